//! Commands by mail: lines at the top of a staff message, each the same
//! action as the CLI (`#note`, `#level N reason…`, `#assign NAME`,
//! `#waiting`, `#resolve`, `#close`, `#reopen`, `#review`). Pure parsing;
//! whether the sender may command at all is the caller's (authenticated
//! staff only), and a refused command refuses the whole message.

use super::{Action, Refusal};

/// The commands of a message and what is left of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commands {
    pub actions: Vec<Action>,
    /// `#note`: the whole message is internal (recorded, never relayed).
    pub internal: bool,
    /// The text after the command lines.
    pub body: String,
}

/// Parse the command lines at the top of `text` (a staff member's own
/// words). A line is a command when it starts with `#` and a letter.
pub fn parse(text: &str) -> Result<Commands, Refusal> {
    let mut out = Commands::default();
    let mut lines = text.lines().peekable();
    let mut note_inline: Vec<String> = Vec::new();
    while let Some(line) = lines.peek() {
        let t = line.trim();
        if t.is_empty() {
            lines.next();
            continue;
        }
        let Some(cmd) = t.strip_prefix('#') else {
            break;
        };
        if !cmd.starts_with(|c: char| c.is_ascii_alphabetic()) {
            break;
        }
        lines.next();
        let (word, rest) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
        let rest = rest.trim();
        let word = word.to_ascii_lowercase();
        let action = match word.as_str() {
            "note" => {
                out.internal = true;
                if !rest.is_empty() {
                    note_inline.push(rest.to_string());
                }
                continue;
            }
            "level" => {
                let (n, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                let level: u8 = n
                    .parse()
                    .ok()
                    .filter(|l| (1..=5).contains(l))
                    .ok_or_else(|| Refusal::BadLevel(n.to_string()))?;
                Action::Relevel {
                    level,
                    reason: reason.trim().to_string(),
                }
            }
            "assign" => Action::Assign {
                to: rest.to_string(),
            },
            "waiting" => Action::Waiting,
            "resolve" => Action::Resolve,
            "close" => Action::Close,
            "reopen" => Action::Reopen,
            "review" => Action::Review,
            "verify" => Action::Verify {
                method: Some(if rest.is_empty() {
                    "checked by the privacy officer".to_string()
                } else {
                    rest.to_string()
                }),
                not_needed: None,
            },
            "extend" => Action::Extend {
                reason: rest.to_string(),
            },
            "deny" => Action::Deny {
                reason: rest.to_string(),
            },
            "forward" => Action::Forward {
                agency: rest.to_string(),
            },
            // The answer's text is the rest of the message.
            "complete" => Action::Complete {
                text: None,
                attachments: Vec::new(),
            },
            other => return Err(Refusal::UnknownCommand(other.to_string())),
        };
        out.actions.push(action);
    }
    out.body = lines.collect::<Vec<_>>().join("\n").trim().to_string();
    for a in &mut out.actions {
        if let Action::Complete { text, .. } = a {
            *text = Some(out.body.clone()).filter(|t| !t.is_empty());
        }
    }
    if out.internal {
        let mut text = note_inline.join("\n");
        if !out.body.is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&out.body);
        }
        out.actions.insert(0, Action::Note { text });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_at_the_top_then_the_text() {
        let c = parse("\n#level 2 whole office affected\n#assign sam@casehost.example\n\nWe are on it.\n#not a command").expect("ok");
        assert_eq!(
            c.actions,
            vec![
                Action::Relevel {
                    level: 2,
                    reason: "whole office affected".into()
                },
                Action::Assign {
                    to: "sam@casehost.example".into()
                }
            ]
        );
        assert_eq!(c.body, "We are on it.\n#not a command");
        assert!(!c.internal);
    }

    #[test]
    fn a_note_keeps_the_whole_message_internal() {
        let c = parse("#note\nCustomer called, printer fixed.").expect("ok");
        assert!(c.internal);
        assert_eq!(
            c.actions,
            vec![Action::Note {
                text: "Customer called, printer fixed.".into()
            }]
        );
    }

    #[test]
    fn bad_commands_are_refused() {
        assert_eq!(parse("#level 9 x"), Err(Refusal::BadLevel("9".into())));
        assert_eq!(
            parse("#lvl 2 x"),
            Err(Refusal::UnknownCommand("lvl".into()))
        );
        // Not commands: a heading, a number.
        assert_eq!(parse("# Heading\ntext").expect("ok").actions, vec![]);
        assert_eq!(parse("#1 thing").expect("ok").actions, vec![]);
    }
}
