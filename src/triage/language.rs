//! The language of the requester's own words (whatlang, trigram based),
//! as an ISO 639-1 code where one exists. Only a bounded prefix of the text
//! is examined.

use whatlang::{Detector, Lang};

/// Bytes of text examined.
const SAMPLE: usize = 240;

/// Languages considered. Latin-script languages cost trigram comparisons,
/// so only those our requesters plausibly write are listed; other scripts
/// are told apart by their alphabet, which is cheap.
const ALLOW: &[Lang] = &[
    Lang::Eng,
    Lang::Deu,
    Lang::Fra,
    Lang::Spa,
    Lang::Ita,
    Lang::Por,
    Lang::Nld,
    Lang::Rus,
    Lang::Ukr,
    Lang::Ell,
    Lang::Jpn,
    Lang::Cmn,
    Lang::Kor,
    Lang::Ara,
    Lang::Heb,
];

/// Detect the language of `text`; `None` for too little text.
pub fn detect(text: &str) -> Option<String> {
    let mut end = text.len().min(SAMPLE);
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let sample = text[..end].trim();
    if sample.chars().filter(|c| c.is_alphabetic()).count() < 8 {
        return None;
    }
    static DETECTOR: std::sync::OnceLock<Detector> = std::sync::OnceLock::new();
    let detector = DETECTOR.get_or_init(|| Detector::with_allowlist(ALLOW.to_vec()));
    let info = detector.detect(sample)?;
    Some(iso639_1(info.lang()).to_string())
}

fn iso639_1(l: Lang) -> &'static str {
    match l {
        Lang::Eng => "en",
        Lang::Deu => "de",
        Lang::Fra => "fr",
        Lang::Spa => "es",
        Lang::Ita => "it",
        Lang::Por => "pt",
        Lang::Nld => "nl",
        Lang::Pol => "pl",
        Lang::Swe => "sv",
        Lang::Dan => "da",
        Lang::Nob => "no",
        Lang::Fin => "fi",
        Lang::Ces => "cs",
        Lang::Ron => "ro",
        Lang::Hun => "hu",
        Lang::Tur => "tr",
        Lang::Rus => "ru",
        Lang::Ukr => "uk",
        Lang::Ell => "el",
        Lang::Jpn => "ja",
        Lang::Cmn => "zh",
        Lang::Kor => "ko",
        Lang::Ara => "ar",
        Lang::Heb => "he",
        Lang::Vie => "vi",
        other => other.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_languages() {
        assert_eq!(
            detect("The whole site is down and nobody in our office can log in this morning.")
                .as_deref(),
            Some("en")
        );
        assert_eq!(
            detect("Hiermit verlange ich Auskunft über alle meine personenbezogenen Daten.")
                .as_deref(),
            Some("de")
        );
        assert_eq!(
            detect(
                "Je vous demande de supprimer toutes mes données personnelles, s'il vous plaît."
            )
            .as_deref(),
            Some("fr")
        );
        assert_eq!(
            detect("Solicito el acceso a mis datos personales y una copia de los mismos.")
                .as_deref(),
            Some("es")
        );
        assert_eq!(detect("ok"), None);
    }
}
