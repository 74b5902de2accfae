//! Privacy inquiries: a message to privacy@ that asks a question about how
//! personal data is handled (where it is hosted, who the sub-processors
//! are, how long it is kept) and exercises no right. It becomes a privacy
//! case with no rights and no statutory clock; the review clock applies.
//! Pure.

/// Words that ask (a question mark, or an interrogative opening in one of
/// the languages we answer).
const ASKING: &[&str] = &[
    "?",
    "where ",
    "who ",
    "which ",
    "what ",
    "how long",
    "do you ",
    "does ",
    "is there ",
    "are you ",
    "can you tell",
    "could you tell",
    "please confirm",
    "wo ",
    "wer ",
    "welche ",
    "wie lange",
    "gibt es ",
    "où ",
    "qui ",
    "quels ",
    "quelles ",
    "combien de temps",
    "dónde ",
    "quién ",
    "quiénes ",
    "cuáles ",
    "cuánto tiempo",
];

/// How data is processed, as opposed to a person's own data.
const TOPICS: &[&str] = &[
    "hosted",
    "hosting",
    "data center",
    "data centre",
    "datacenter",
    "server location",
    "servers located",
    "stored",
    "sub-processor",
    "subprocessor",
    "sub processor",
    "processors",
    "third parties",
    "third-party",
    "data processing agreement",
    " dpa",
    "transfer",
    "standard contractual clauses",
    "privacy policy",
    "retention",
    "how long do you keep",
    "iso 27001",
    "soc 2",
    "encrypt",
    "gehostet",
    "rechenzentrum",
    "unterauftragsverarbeiter",
    "auftragsverarbeitung",
    " avv",
    "gespeichert",
    "drittland",
    "hébergé",
    "hébergement",
    "sous-traitant",
    "stockées",
    "conservées",
    "alojados",
    "alojamiento",
    "subencargado",
    "encargados",
    "almacenados",
    "conservan",
];

/// Why `subject` and `body` read as an inquiry about processing, if they
/// do. The caller has already found that no right is asked for.
pub fn reason(subject: &str, body: &str) -> Option<String> {
    let text = format!(" {} \n {} ", subject, body).to_lowercase();
    // A question has words: at least a handful of them.
    if text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphabetic))
        .count()
        < 4
    {
        return None;
    }
    let asks = ASKING.iter().any(|w| text.contains(w));
    let topic = TOPICS.iter().find(|w| has_phrase(&text, w.trim()))?;
    asks.then(|| {
        format!(
            "asks about processing (\"{}\") and exercises no right: privacy inquiry",
            topic.trim()
        )
    })
}

/// `needle` in `hay` at the start of a word ("stored", not "restored";
/// inflections such as "hébergées" for "hébergé" still match).
fn has_phrase(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(i, _)| {
        !hay[..i]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    use super::reason;

    #[test]
    fn questions_about_processing_are_inquiries_and_others_are_not() {
        let cases = [
            (
                "Hosting",
                "Where is our data hosted? In the EU or the US?",
                true,
            ),
            (
                "Sub-processors",
                "Could you send the list of your sub-processors.?",
                true,
            ),
            (
                "Frage",
                "Wo werden unsere Daten gehostet? Gibt es Unterauftragsverarbeiter?",
                true,
            ),
            (
                "Question",
                "Où sont hébergées les données ? Quels sous-traitants ?",
                true,
            ),
            ("Pregunta", "¿Dónde están alojados los datos?", true),
            ("Delete me", "Please delete all my data.", false),
            ("Hi", "What time is it?", false),
            ("DPA", "We signed the data processing agreement.", false),
            ("Backup", "Was everything restored? Thanks a lot", false),
            ("", "se?nstored", false),
        ];
        for (s, b, want) in cases {
            assert_eq!(reason(s, b).is_some(), want, "{s}: {b}");
        }
    }
}
