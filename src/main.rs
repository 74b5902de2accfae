//! The `ticketd` binary: parse the command line, set up logging, hand over
//! to [`ticketd::cli`]. Nothing else lives here.

use clap::Parser;

fn main() {
    ticketd::alloc::bound_arenas();
    let cli = ticketd::cli::Cli::parse();
    let default_level = match cli.command {
        ticketd::cli::Command::Run { .. } => "info",
        _ => "warn",
    };
    ticketd::observe::logs::init(
        ticketd::config::monitoring::peek_log_format(cli.config.as_deref()),
        default_level,
    );

    // mail-parser's debug assertions can be reached by crafted MIME; the
    // library catches them (see mail::parse_with) and records the message as
    // unparseable. Say so in the log instead of printing a panic.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info
            .location()
            .is_some_and(|l| l.file().contains("mail-parser"))
        {
            tracing::warn!("the MIME parser failed on a message; it is recorded as unparseable");
            return;
        }
        default_hook(info);
    }));

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ticketd: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(ticketd::cli::run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ticketd: {}", e.message);
            e.code
        }
    };
    std::process::exit(code);
}
