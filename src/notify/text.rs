//! Dates and times written the way a reader expects them in their
//! language (English, German, French, Spanish), in the calendar's zone:
//! "Friday, Nov 27, 8:00 a.m. ET", "Freitag, 27. Nov., 8:00 Uhr ET".
//! Pure; the month and day names are the only data.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;

/// Languages with their own templates and date words.
pub const LANGUAGES: &[&str] = &["en", "de", "fr", "es"];

/// The language to write in: the requester's when we have it, else English.
pub fn pick_language(lang: Option<&str>) -> &'static str {
    match lang.map(|l| l.to_ascii_lowercase()) {
        Some(l) if l.starts_with("de") => "de",
        Some(l) if l.starts_with("fr") => "fr",
        Some(l) if l.starts_with("es") => "es",
        _ => "en",
    }
}

const EN_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const DE_DAYS: [&str; 7] = [
    "Montag",
    "Dienstag",
    "Mittwoch",
    "Donnerstag",
    "Freitag",
    "Samstag",
    "Sonntag",
];
const FR_DAYS: [&str; 7] = [
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
];
const ES_DAYS: [&str; 7] = [
    "lunes",
    "martes",
    "miércoles",
    "jueves",
    "viernes",
    "sábado",
    "domingo",
];

const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const EN_MON: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DE_MONTHS: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const FR_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const ES_MONTHS: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];

/// A short name for the zone: "ET" for US Eastern (and the other US
/// mainland zones), otherwise the zone's abbreviation at that instant.
fn zone_label(tz: Tz, t: DateTime<Utc>) -> String {
    match tz.name() {
        "America/New_York" | "US/Eastern" | "America/Detroit" | "America/Toronto" => "ET".into(),
        "America/Chicago" | "US/Central" => "CT".into(),
        "America/Denver" | "US/Mountain" => "MT".into(),
        "America/Los_Angeles" | "US/Pacific" => "PT".into(),
        _ => t.with_timezone(&tz).format("%Z").to_string(),
    }
}

/// An instant in the reader's words, in zone `tz`: "Friday, Nov 27,
/// 8:00 a.m. ET".
pub fn human_instant(lang: &str, tz: Tz, t: DateTime<Utc>) -> String {
    let l = t.with_timezone(&tz);
    let wd = l.weekday().num_days_from_monday() as usize;
    let m = l.month0() as usize;
    let d = l.day();
    let (h, min) = (l.hour(), l.minute());
    let zone = zone_label(tz, t);
    match lang {
        "de" => format!(
            "{}, {}. {} {}:{:02} Uhr ({zone})",
            DE_DAYS[wd], d, DE_MONTHS[m], h, min
        ),
        "fr" => format!(
            "{} {} {} à {} h {:02} ({zone})",
            FR_DAYS[wd], d, FR_MONTHS[m], h, min
        ),
        "es" => format!(
            "{}, {} de {}, a las {}:{:02} ({zone})",
            ES_DAYS[wd], d, ES_MONTHS[m], h, min
        ),
        _ => {
            let (h12, ampm) = match h {
                0 => (12, "a.m."),
                1..=11 => (h, "a.m."),
                12 => (12, "p.m."),
                _ => (h - 12, "p.m."),
            };
            format!(
                "{}, {} {}, {}:{:02} {} {zone}",
                EN_DAYS[wd], EN_MON[m], d, h12, min, ampm
            )
        }
    }
}

/// A date in the reader's words: "Thursday, December 24, 2026".
pub fn human_date(lang: &str, d: NaiveDate) -> String {
    let wd = d.weekday().num_days_from_monday() as usize;
    let m = d.month0() as usize;
    let (day, y) = (d.day(), d.year());
    match lang {
        "de" => format!("{}, {}. {} {}", DE_DAYS[wd], day, DE_MONTHS[m], y),
        "fr" => format!("{} {} {} {}", FR_DAYS[wd], day, FR_MONTHS[m], y),
        "es" => format!("{}, {} de {} de {}", ES_DAYS[wd], day, ES_MONTHS[m], y),
        _ => format!("{}, {} {}, {}", EN_DAYS[wd], EN_MONTHS[m], day, y),
    }
}

/// What a support level means, in the reader's language.
pub fn level_meaning(lang: &str, level: u8) -> &'static str {
    match (lang, level) {
        ("de", 1) => "die Site ist nicht erreichbar oder reagiert nicht",
        ("de", 2) => "eine wichtige Funktion ist ausgefallen",
        ("de", 3) => "ein Fehler in einer Funktion",
        ("de", 4) => "eine Funktion arbeitet nicht wie erwartet",
        ("de", _) => "ein Änderungs- oder Funktionswunsch",
        ("fr", 1) => "le site est inaccessible ou ne répond pas",
        ("fr", 2) => "une fonction essentielle est en panne",
        ("fr", 3) => "une erreur dans une fonction",
        ("fr", 4) => "une fonction ne marche pas comme prévu",
        ("fr", _) => "une demande de modification ou de nouvelle fonction",
        ("es", 1) => "el sitio no está disponible o no responde",
        ("es", 2) => "una función esencial no funciona",
        ("es", 3) => "un error en una función",
        ("es", 4) => "una función no se comporta como se espera",
        ("es", _) => "una solicitud de cambio o de nueva función",
        (_, l) => crate::policy::level_meaning(l),
    }
}

/// A span of support time: "30 minutes", "1 hour", "12 hours".
pub fn duration_phrase(lang: &str, seconds: u64) -> String {
    let minutes = seconds / 60;
    let (n, unit_one, unit_many) = if minutes.is_multiple_of(60) && minutes >= 60 {
        let h = minutes / 60;
        match lang {
            "de" => (h, "Stunde", "Stunden"),
            "fr" => (h, "heure", "heures"),
            "es" => (h, "hora", "horas"),
            _ => (h, "hour", "hours"),
        }
    } else {
        match lang {
            "de" => (minutes, "Minute", "Minuten"),
            "fr" => (minutes, "minute", "minutes"),
            "es" => (minutes, "minuto", "minutos"),
            _ => (minutes, "minute", "minutes"),
        }
    };
    format!("{n} {}", if n == 1 { unit_one } else { unit_many })
}

/// The support hours, e.g. "07:30-19:30 US Eastern time, Monday to Friday,
/// except holidays".
pub fn hours_text(lang: &str, cal: &crate::clock::CalendarSettings) -> String {
    let zone = match cal.time_zone.name() {
        "America/New_York" => match lang {
            "de" => "US-Ostküstenzeit".to_string(),
            "fr" => "heure de l'Est des États-Unis".to_string(),
            "es" => "hora del Este de EE. UU.".to_string(),
            _ => "US Eastern time".to_string(),
        },
        other => other.to_string(),
    };
    let days: &[&str; 7] = match lang {
        "de" => &DE_DAYS,
        "fr" => &FR_DAYS,
        "es" => &ES_DAYS,
        _ => &EN_DAYS,
    };
    let wd: Vec<usize> = cal
        .working_days
        .iter()
        .map(|d| d.num_days_from_monday() as usize)
        .collect();
    let contiguous = wd.windows(2).all(|w| w[1] == w[0] + 1);
    let span = match (wd.first(), wd.last()) {
        (Some(a), Some(b)) if contiguous && a != b => {
            let to = match lang {
                "de" => "bis",
                "fr" => "à",
                "es" => "a",
                _ => "to",
            };
            format!("{} {to} {}", days[*a], days[*b])
        }
        _ => wd.iter().map(|i| days[*i]).collect::<Vec<_>>().join(", "),
    };
    let except = match lang {
        "de" => "außer an Feiertagen",
        "fr" => "sauf jours fériés",
        "es" => "excepto festivos",
        _ => "except holidays",
    };
    format!(
        "{}-{} {zone}, {span}, {except}",
        cal.opens.format("%H:%M"),
        cal.closes.format("%H:%M")
    )
}

/// A privacy right described in the reader's language.
pub fn right_description(lang: &str, r: crate::policy::Right) -> &'static str {
    use crate::policy::Right::*;
    match (lang, r) {
        ("de", Access) => "Auskunft über Ihre personenbezogenen Daten (Art. 15 DSGVO)",
        ("de", Erasure) => "Löschung Ihrer personenbezogenen Daten (Art. 17 DSGVO)",
        ("de", Rectification) => "Berichtigung Ihrer Daten (Art. 16 DSGVO)",
        ("de", Restriction) => "Einschränkung der Verarbeitung (Art. 18 DSGVO)",
        ("de", Portability) => "Datenübertragbarkeit (Art. 20 DSGVO)",
        ("de", Objection) => "Widerspruch gegen die Verarbeitung (Art. 21 DSGVO)",
        ("de", AutomatedDecision) => {
            "keiner automatisierten Entscheidung unterworfen zu werden (Art. 22 DSGVO)"
        }
        ("de", ConsentWithdrawal) => "Widerruf Ihrer Einwilligung (Art. 7 Abs. 3 DSGVO)",
        ("fr", Access) => "l'accès à vos données personnelles (art. 15 RGPD)",
        ("fr", Erasure) => "l'effacement de vos données personnelles (art. 17 RGPD)",
        ("fr", Rectification) => "la rectification de vos données (art. 16 RGPD)",
        ("fr", Restriction) => "la limitation du traitement (art. 18 RGPD)",
        ("fr", Portability) => "la portabilité de vos données (art. 20 RGPD)",
        ("fr", Objection) => "l'opposition au traitement (art. 21 RGPD)",
        ("fr", AutomatedDecision) => {
            "ne pas faire l'objet d'une décision automatisée (art. 22 RGPD)"
        }
        ("fr", ConsentWithdrawal) => "le retrait de votre consentement (art. 7(3) RGPD)",
        ("es", Access) => "el acceso a sus datos personales (art. 15 RGPD)",
        ("es", Erasure) => "la supresión de sus datos personales (art. 17 RGPD)",
        ("es", Rectification) => "la rectificación de sus datos (art. 16 RGPD)",
        ("es", Restriction) => "la limitación del tratamiento (art. 18 RGPD)",
        ("es", Portability) => "la portabilidad de sus datos (art. 20 RGPD)",
        ("es", Objection) => "la oposición al tratamiento (art. 21 RGPD)",
        ("es", AutomatedDecision) => "no ser objeto de decisiones automatizadas (art. 22 RGPD)",
        ("es", ConsentWithdrawal) => "la retirada de su consentimiento (art. 7.3 RGPD)",
        (_, r) => r.describe(),
    }
}

/// How far an answer may be extended: two months (GDPR Art. 12(3)) or 45
/// days (CCPA, to 90 days in all).
pub fn extension_by(lang: &str, ccpa: bool) -> &'static str {
    match (lang, ccpa) {
        ("de", false) => "um zwei Monate",
        ("de", true) => "um bis zu 45 Tage",
        ("fr", false) => "de deux mois",
        ("fr", true) => "de 45 jours au plus",
        ("es", false) => "dos meses",
        ("es", true) => "hasta 45 días",
        (_, false) => "by two further months",
        (_, true) => "by up to 45 further days",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn instants_in_four_languages() {
        let ny = chrono_tz::America::New_York;
        let t = at("2026-11-27T08:00:00-05:00");
        assert_eq!(human_instant("en", ny, t), "Friday, Nov 27, 8:00 a.m. ET");
        assert_eq!(
            human_instant("de", ny, t),
            "Freitag, 27. November 8:00 Uhr (ET)"
        );
        assert_eq!(
            human_instant("fr", ny, t),
            "vendredi 27 novembre à 8 h 00 (ET)"
        );
        assert_eq!(
            human_instant("es", ny, t),
            "viernes, 27 de noviembre, a las 8:00 (ET)"
        );
        let noon = at("2026-11-27T12:30:00-05:00");
        assert_eq!(
            human_instant("en", ny, noon),
            "Friday, Nov 27, 12:30 p.m. ET"
        );
        let berlin = chrono_tz::Europe::Berlin;
        assert_eq!(
            human_instant("de", berlin, t),
            "Freitag, 27. November 14:00 Uhr (CET)"
        );
    }

    #[test]
    fn dates_and_language_choice() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 24).expect("date");
        assert_eq!(human_date("en", d), "Thursday, December 24, 2026");
        assert_eq!(human_date("de", d), "Donnerstag, 24. Dezember 2026");
        assert_eq!(human_date("es", d), "jueves, 24 de diciembre de 2026");
        assert_eq!(pick_language(Some("de")), "de");
        assert_eq!(pick_language(Some("ja")), "en");
        assert_eq!(pick_language(None), "en");
    }
}
