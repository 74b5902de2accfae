//! The language of the requester's own words, as an ISO 639-1 code where
//! one exists. Only a bounded prefix of the text is examined. Text in the
//! Latin script (almost all of our mail) goes to whichlang, a small linear
//! model that is about seven times faster than trigram matching; other
//! scripts, and the rare Latin text whichlang gives a non-Latin language,
//! go to whatlang (trigrams and alphabets), which also tells apart the
//! languages whichlang does not know (Ukrainian, Greek, Hebrew).

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
    if sample.chars().all(|c| !c.is_alphabetic() || is_latin(c)) {
        if let Some(code) = latin_code(whichlang::detect_language(sample)) {
            return Some(code.to_string());
        }
    }
    static DETECTOR: std::sync::OnceLock<Detector> = std::sync::OnceLock::new();
    let detector = DETECTOR.get_or_init(|| Detector::with_allowlist(ALLOW.to_vec()));
    let info = detector.detect(sample)?;
    Some(iso639_1(info.lang()).to_string())
}

/// A letter of the Latin script: ASCII, Latin-1 Supplement, Latin
/// Extended-A/B and Latin Extended Additional (Vietnamese).
fn is_latin(c: char) -> bool {
    c.is_ascii() || ('\u{00C0}'..='\u{024F}').contains(&c) || ('\u{1E00}'..='\u{1EFF}').contains(&c)
}

/// The code of a Latin-script language from whichlang; `None` for the
/// others (left to whatlang).
fn latin_code(l: whichlang::Lang) -> Option<&'static str> {
    use whichlang::Lang as W;
    Some(match l {
        W::Eng => "en",
        W::Deu => "de",
        W::Fra => "fr",
        W::Spa => "es",
        W::Ita => "it",
        W::Por => "pt",
        W::Nld => "nl",
        W::Swe => "sv",
        W::Tur => "tr",
        W::Vie => "vi",
        W::Ara | W::Cmn | W::Hin | W::Jpn | W::Kor | W::Rus => return None,
    })
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

    #[test]
    fn other_latin_languages_and_other_scripts() {
        assert_eq!(
            detect("Vorrei sapere quali dati personali avete su di me e chiedo la cancellazione.")
                .as_deref(),
            Some("it")
        );
        assert_eq!(
            detect("Ik wil graag weten welke persoonsgegevens u van mij heeft opgeslagen.")
                .as_deref(),
            Some("nl")
        );
        assert_eq!(
            detect("Gostaria de saber quais dados pessoais vocês têm sobre mim, por favor.")
                .as_deref(),
            Some("pt")
        );
        // Not Latin: whatlang, including languages whichlang does not know.
        assert_eq!(
            detect("Прошу предоставить мне доступ ко всем моим персональным данным.").as_deref(),
            Some("ru")
        );
        assert_eq!(
            detect("Παρακαλώ διαγράψτε όλα τα προσωπικά μου δεδομένα από το σύστημά σας.")
                .as_deref(),
            Some("el")
        );
        assert_eq!(
            detect("אני מבקש לקבל עותק של כל המידע האישי שלי שנשמר אצלכם.").as_deref(),
            Some("he")
        );
        assert_eq!(
            detect("個人データの削除をお願いします。よろしくお願いいたします。").as_deref(),
            Some("ja")
        );
    }
}
