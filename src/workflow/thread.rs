//! The threading rule, written once (pure): which case a message joins, or
//! why it opens a new one. The ingest transaction and planning ahead both
//! call [`decide`], each with its own view of the store.
//!
//! - One of our Message-IDs with a valid token (see [`super::token`]) in
//!   In-Reply-To/References joins its case, whoever sends it: only the
//!   recipients of our mail know it. A sender new to the case becomes a
//!   participant.
//! - A Message-ID of a message we received joins its case, as always.
//! - A subject tag, or an id that names a case without a valid token,
//!   joins only when the sender is a party: the requester or reply
//!   address, a participant (From/To/Cc of earlier messages), an
//!   authenticated staff sender, or a site administrator of the case's
//!   agency. A stranger opens a new case linked to the named one and
//!   flagged for review; a tag naming no case opens a clean new case.
//! - A requester's mail to a closed case opens a new case, linked to the
//!   old one when it was closed recently.

use crate::store::{Case, CaseStatus};
use chrono::{DateTime, Duration, Utc};

/// One id from In-Reply-To/References, as the sender wrote it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HeaderRef {
    /// One of ours (by its shape); `verified` when its token is valid.
    Ours { case: String, verified: bool },
    /// Someone else's Message-ID; `case` when a case number is embedded
    /// in it (it counts as a subject tag, no more).
    Other { id: String, case: Option<String> },
}

/// What the rule needs to know about one message.
#[derive(Debug, Clone)]
pub struct ThreadQuery<'a> {
    /// In-Reply-To, then References newest first.
    pub refs: &'a [HeaderRef],
    /// `[SUP-000123]` in the subject.
    pub subject_tag: Option<&'a str>,
    /// The sender (From), lower case.
    pub sender: Option<&'a str>,
    /// The sender is staff and its authentication did not fail.
    pub staff: bool,
    pub now: DateTime<Utc>,
    /// A closed case named within this long after closing is linked.
    pub link_closed_within: Duration,
}

/// The store as the rule sees it (reads may fail: a transaction conflict
/// must reach the transaction).
pub trait ThreadLookup {
    type Error;
    /// The case a stored (received or sent) Message-ID belongs to.
    fn case_of_message_id(&self, id: &str) -> Result<Option<String>, Self::Error>;
    fn case(&self, id: &str) -> Result<Option<Case>, Self::Error>;
    /// `address` is a site administrator of the case's agency.
    fn site_admin(&self, case: &Case, address: &str) -> bool;
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thread {
    /// Joins `case`.
    Join {
        case: String,
        matched_by: String,
        /// The sender was not a party yet (it knew a valid token).
        new_participant: bool,
    },
    /// Opens a new case. `link`: a case to link to (event on both);
    /// `review`: why staff should look first; `clean_subject`: the
    /// message named a case, so case tags leave its subject.
    New {
        link: Option<String>,
        review: Option<String>,
        clean_subject: bool,
    },
}

impl Thread {
    fn plain() -> Thread {
        Thread::New {
            link: None,
            review: None,
            clean_subject: false,
        }
    }
}

/// Whether `sender` is a party to `case` (see the module docs).
pub fn is_party(case: &Case, sender: &str, staff: bool, site_admin: bool) -> bool {
    let s = sender.to_ascii_lowercase();
    let eq = |a: Option<&str>| a.is_some_and(|a| a.eq_ignore_ascii_case(&s));
    staff
        || site_admin
        || eq(case.requester.as_ref().map(|a| a.address.as_str()))
        || eq(case.reply_address.as_deref())
        || case.participants.iter().any(|p| p.eq_ignore_ascii_case(&s))
}

/// The threading decision for `q` (pure, given `store`).
pub fn decide<L: ThreadLookup>(q: &ThreadQuery<'_>, store: &L) -> Result<Thread, L::Error> {
    let sender = q.sender.unwrap_or("");
    let party =
        |c: &Case| !sender.is_empty() && is_party(c, sender, q.staff, store.site_admin(c, sender));
    // Strong references: a valid token, or a Message-ID we stored.
    let mut strong = None;
    for r in q.refs {
        match r {
            HeaderRef::Ours {
                case,
                verified: true,
            } => {
                if let Some(c) = store.case(case)? {
                    strong = Some((
                        c,
                        "header names our Message-ID for the case (valid token)".to_string(),
                    ));
                    break;
                }
            }
            HeaderRef::Other { id, .. } => {
                let found = match store.case_of_message_id(id)? {
                    Some(c) => store.case(&c)?,
                    None => None,
                };
                if let Some(c) = found {
                    strong = Some((c, format!("header names stored message <{id}>")));
                    break;
                }
            }
            HeaderRef::Ours { .. } => {}
        }
    }
    if let Some((c, why)) = strong {
        let new_participant = !party(&c);
        return Ok(closed_or_join(q, c, why, new_participant));
    }
    // Weak references: ids without a valid token, ids with a case number
    // in them, the subject tag.
    let weak = q
        .refs
        .iter()
        .find_map(|r| match r {
            HeaderRef::Ours { case, .. } => {
                Some((case.clone(), "an id of ours without a valid token"))
            }
            HeaderRef::Other { case: Some(c), .. } => {
                Some((c.clone(), "a header id that contains a case number"))
            }
            HeaderRef::Other { .. } => None,
        })
        .or_else(|| q.subject_tag.map(|t| (t.to_string(), "subject tag")));
    let Some((named, how)) = weak else {
        return Ok(Thread::plain());
    };
    let Some(c) = store.case(&named)? else {
        return Ok(Thread::New {
            link: None,
            review: None,
            clean_subject: true,
        });
    };
    if party(&c) {
        let who = if q.staff {
            "a staff sender"
        } else {
            "a party to the case"
        };
        return Ok(closed_or_join(q, c, format!("{how} from {who}"), false));
    }
    Ok(Thread::New {
        link: Some(c.id.clone()),
        review: Some(format!(
            "names {} ({how}) but the sender is not a party to it: opened as a new case",
            c.id
        )),
        clean_subject: true,
    })
}

/// A new case as the rule shaped it: linked, flagged for review, with the
/// message's parties. The transaction and planning ahead both apply it.
pub fn shape_new_case(case: &mut Case, t: &Thread, parties: &[String]) {
    case.participants = parties.to_vec();
    if let Thread::New {
        link,
        review,
        clean_subject,
    } = t
    {
        if *clean_subject {
            case.subject = strip_case_tags(&case.subject);
        }
        if let Some(l) = link {
            case.links = vec![l.clone()];
        }
        if let Some(r) = review {
            case.doubt = Some(r.clone());
        }
    }
}

fn closed_or_join(q: &ThreadQuery<'_>, c: Case, why: String, new_participant: bool) -> Thread {
    if c.status == CaseStatus::Closed && !q.staff {
        let recent = c
            .clocks
            .closed_at
            .is_none_or(|t| q.now - t <= q.link_closed_within);
        return Thread::New {
            link: recent.then(|| c.id.clone()),
            review: None,
            clean_subject: true,
        };
    }
    Thread::Join {
        case: c.id,
        matched_by: why,
        new_participant,
    }
}

/// `subject` without any `[SUP-000123]` / `[PRV-000123]` tag, including
/// one that taking out another would leave (`[SUP-[SUP-000001]000002]`).
pub fn strip_case_tags(subject: &str) -> String {
    let mut s = strip_tags_once(subject);
    loop {
        let again = strip_tags_once(&s);
        if again == s {
            return s;
        }
        s = again;
    }
}

fn strip_tags_once(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    let mut rest = subject;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close)
                if {
                    let inner = after[..close].trim();
                    crate::triage::find_case_number(inner)
                        .is_some_and(|c| c.eq_ignore_ascii_case(inner))
                } =>
            {
                out.push_str(&rest[..open]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..open + 1]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::Addr;
    use std::collections::HashMap;

    struct Fake {
        cases: HashMap<String, Case>,
        ids: HashMap<String, String>,
    }
    impl ThreadLookup for Fake {
        type Error = std::convert::Infallible;
        fn case_of_message_id(&self, id: &str) -> Result<Option<String>, Self::Error> {
            Ok(self.ids.get(id).cloned())
        }
        fn case(&self, id: &str) -> Result<Option<Case>, Self::Error> {
            Ok(self.cases.get(id).cloned())
        }
        fn site_admin(&self, _: &Case, a: &str) -> bool {
            a == "admin@agency.example"
        }
    }

    fn case(id: &str, requester: &str, status: CaseStatus) -> Case {
        let t: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("t");
        let d = crate::triage::Decision::test_ticket(3);
        let mut c = crate::store::planned_case(
            id,
            &d,
            1,
            "Printer",
            Some(&Addr {
                name: None,
                address: requester.into(),
            }),
            &Ok(requester.to_string()),
            "support",
            t,
            t,
            vec![],
        );
        c.status = status;
        c.participants = vec!["colleague@r.example".into()];
        c
    }

    fn store() -> Fake {
        let mut cases = HashMap::new();
        cases.insert(
            "SUP-000001".into(),
            case("SUP-000001", "ann@r.example", CaseStatus::Open),
        );
        let mut closed = case("SUP-000002", "ann@r.example", CaseStatus::Closed);
        closed.clocks.closed_at = Some("2026-12-02T10:00:00Z".parse().expect("t"));
        cases.insert("SUP-000002".into(), closed);
        let mut ids = HashMap::new();
        ids.insert("first@r.example".to_string(), "SUP-000001".to_string());
        Fake { cases, ids }
    }

    fn q<'a>(
        refs: &'a [HeaderRef],
        tag: Option<&'a str>,
        sender: &'a str,
        staff: bool,
    ) -> ThreadQuery<'a> {
        ThreadQuery {
            refs,
            subject_tag: tag,
            sender: Some(sender),
            staff,
            now: "2026-12-03T10:00:00Z".parse().expect("t"),
            link_closed_within: Duration::days(30),
        }
    }

    fn dec(q: &ThreadQuery<'_>, s: &Fake) -> Thread {
        match decide(q, s) {
            Ok(t) => t,
            Err(e) => match e {},
        }
    }

    fn joins(t: &Thread) -> Option<(&str, bool)> {
        match t {
            Thread::Join {
                case,
                new_participant,
                ..
            } => Some((case, *new_participant)),
            _ => None,
        }
    }

    #[test]
    fn a_valid_token_joins_whoever_sends_it() {
        let s = store();
        let refs = [HeaderRef::Ours {
            case: "SUP-000001".into(),
            verified: true,
        }];
        assert_eq!(
            joins(&dec(&q(&refs, None, "stranger@x.example", false), &s)),
            Some(("SUP-000001", true))
        );
        assert_eq!(
            joins(&dec(&q(&refs, None, "ann@r.example", false), &s)),
            Some(("SUP-000001", false))
        );
    }

    #[test]
    fn a_forged_id_or_a_tag_lets_in_only_parties() {
        let s = store();
        let forged = [HeaderRef::Other {
            id: "made-up-SUP-000001@elsewhere.example".into(),
            case: Some("SUP-000001".into()),
        }];
        let unverified = [HeaderRef::Ours {
            case: "SUP-000001".into(),
            verified: false,
        }];
        for refs in [&forged[..], &unverified[..], &[]] {
            let tag = refs.is_empty().then_some("SUP-000001");
            let stranger = dec(&q(refs, tag, "stranger@x.example", false), &s);
            assert_eq!(
                stranger,
                Thread::New {
                    link: Some("SUP-000001".into()),
                    review: match &stranger {
                        Thread::New { review, .. } => review.clone(),
                        _ => None,
                    },
                    clean_subject: true
                }
            );
            assert!(matches!(
                &stranger,
                Thread::New {
                    review: Some(_),
                    ..
                }
            ));
            for party in [
                "ann@r.example",
                "colleague@r.example",
                "admin@agency.example",
            ] {
                assert_eq!(
                    joins(&dec(&q(refs, tag, party, false), &s)),
                    Some(("SUP-000001", false)),
                    "{party}"
                );
            }
            assert_eq!(
                joins(&dec(&q(refs, tag, "staff@casehost.example", true), &s)),
                Some(("SUP-000001", false))
            );
        }
    }

    #[test]
    fn a_stored_message_id_joins_and_a_missing_case_opens_a_clean_one() {
        let s = store();
        let refs = [HeaderRef::Other {
            id: "first@r.example".into(),
            case: None,
        }];
        assert!(joins(&dec(&q(&refs, None, "someone@x.example", false), &s)).is_some());
        assert_eq!(
            dec(&q(&[], Some("SUP-000099"), "ann@r.example", false), &s),
            Thread::New {
                link: None,
                review: None,
                clean_subject: true
            }
        );
        assert_eq!(
            dec(&q(&[], None, "ann@r.example", false), &s),
            Thread::plain()
        );
    }

    #[test]
    fn a_closed_case_links_a_new_one_except_for_staff() {
        let s = store();
        let t = dec(&q(&[], Some("SUP-000002"), "ann@r.example", false), &s);
        assert_eq!(
            t,
            Thread::New {
                link: Some("SUP-000002".into()),
                review: None,
                clean_subject: true
            }
        );
        let mut late = q(&[], Some("SUP-000002"), "ann@r.example", false);
        late.link_closed_within = Duration::hours(1);
        assert_eq!(
            dec(&late, &s),
            Thread::New {
                link: None,
                review: None,
                clean_subject: true
            }
        );
        assert!(joins(&dec(
            &q(&[], Some("SUP-000002"), "lead@casehost.example", true),
            &s
        ))
        .is_some());
    }

    #[test]
    fn case_tags_leave_a_subject() {
        assert_eq!(
            strip_case_tags("Re: [SUP-000001] printer [PRV-000002] jam"),
            "Re: printer jam"
        );
        assert_eq!(
            strip_case_tags("[note] keep [SUP-1]"),
            "[note] keep [SUP-1]"
        );
        // Taking out the inner tag would leave an outer one.
        let nested = strip_case_tags("[SUP-[SUP-000001]000002] hi");
        assert_eq!(nested, "hi");
        assert_eq!(crate::triage::subject_tag(&nested), None);
    }
}
