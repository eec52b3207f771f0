//! The cluster's verdict on a target from the views of the nodes that probe it: pure counting,
//! no I/O. `health.quorum` says how many of the nodes reporting must see a target down for it
//! to be taken out; a node with no result yet does not vote.

use super::Status;
use crate::config::Quorum;
use std::time::{Duration, SystemTime};

/// One node's view of one target, as it reported it (or, for this node, as it is now).
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub node: String,
    /// Up or down (a node with no result publishes nothing).
    pub status: Status,
    /// When this node's view last changed.
    pub since: SystemTime,
    /// The last error when down; what brought it up otherwise.
    pub reason: Option<String>,
    /// The probe's latency when the view was reported.
    pub latency: Option<Duration>,
}

/// The count behind a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    pub verdict: Status,
    /// Nodes that see the target down.
    pub down: usize,
    /// Nodes that vote (up or down).
    pub voters: usize,
    /// How many down votes take the target out.
    pub needed: usize,
}

/// Counts `views` under `rule`. Without a vote the verdict is unknown (treated as up).
pub fn tally<'a>(rule: Quorum, views: impl IntoIterator<Item = &'a View>) -> Tally {
    let (mut down, mut voters) = (0, 0);
    for v in views {
        match v.status {
            Status::Down => {
                down += 1;
                voters += 1;
            }
            Status::Up => voters += 1,
            Status::Unknown => {}
        }
    }
    let needed = rule.needed(voters);
    let verdict = if voters == 0 {
        Status::Unknown
    } else if down >= needed {
        Status::Down
    } else {
        Status::Up
    };
    Tally {
        verdict,
        down,
        voters,
        needed,
    }
}

/// How the nodes voted, in the words of events and explanations:
/// `quorum majority (2 of 3 down, 2 needed): down on ns1 (timed out), ns2 (refused); up on ns3`.
pub fn describe(rule: Quorum, tally: &Tally, views: &[View]) -> String {
    let mut text = format!(
        "quorum {rule} ({} of {} down, {} needed)",
        tally.down, tally.voters, tally.needed
    );
    for (status, word) in [(Status::Down, "down"), (Status::Up, "up")] {
        let nodes: Vec<String> = views
            .iter()
            .filter(|v| v.status == status)
            .map(|v| match (&v.reason, status) {
                (Some(r), Status::Down) => format!("{} ({r})", v.node),
                _ => v.node.clone(),
            })
            .collect();
        if !nodes.is_empty() {
            text.push_str(if text.contains(": ") { "; " } else { ": " });
            text.push_str(&format!("{word} on {}", nodes.join(", ")));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroUsize;

    fn views(states: &str) -> Vec<View> {
        states
            .chars()
            .enumerate()
            .map(|(i, c)| View {
                node: format!("ns{}", i + 1),
                status: match c {
                    'u' => Status::Up,
                    'd' => Status::Down,
                    _ => Status::Unknown,
                },
                since: SystemTime::UNIX_EPOCH,
                reason: (c == 'd').then(|| "refused".to_string()),
                latency: None,
            })
            .collect()
    }

    #[test]
    fn verdicts_by_rule() {
        use Status::*;
        let two = Quorum::Nodes(NonZeroUsize::new(2).unwrap());
        // (rule, views: u up, d down, ? no result yet, verdict)
        let cases = [
            (Quorum::Majority, "uuu", Up),
            (Quorum::Majority, "duu", Up),
            (Quorum::Majority, "ddu", Down),
            (Quorum::Majority, "du", Up), // one of two is not more than half
            (Quorum::Majority, "dd", Down),
            (Quorum::Majority, "d", Down),
            (Quorum::Majority, "d??", Down), // the nodes without a result do not vote
            (Quorum::Majority, "???", Unknown),
            (Quorum::Majority, "", Unknown),
            (Quorum::Any, "duu", Down),
            (Quorum::Any, "uuu", Up),
            (Quorum::All, "ddu", Up),
            (Quorum::All, "ddd", Down),
            (Quorum::All, "dd?", Down),
            (two, "duu", Up),
            (two, "ddu", Down),
            (two, "d", Down), // fewer report than the rule names: all of them
        ];
        for (rule, states, want) in cases {
            assert_eq!(tally(rule, &views(states)).verdict, want, "{rule} {states}");
        }
    }

    #[test]
    fn the_description_names_every_vote() {
        let v = views("ddu");
        let t = tally(Quorum::Majority, &v);
        assert_eq!(
            describe(Quorum::Majority, &t, &v),
            "quorum majority (2 of 3 down, 2 needed): down on ns1 (refused), ns2 (refused); up on ns3"
        );
        let v = views("uu");
        let t = tally(Quorum::All, &v);
        assert_eq!(
            describe(Quorum::All, &t, &v),
            "quorum all (0 of 2 down, 2 needed): up on ns1, ns2"
        );
    }
}
