//! `scenarios.jsonl`: the shop's own test questions. A reply passes when it contains every
//! `expect` string and no `forbid` string, compared case-insensitively with whitespace
//! normalised.
use serde::{Deserialize, Serialize};

use crate::{bundle::Problem, text::normalise};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub text: String,
    #[serde(default)]
    pub expect: Vec<String>,
    #[serde(default)]
    pub forbid: Vec<String>,
}

/// What a scenario's reply missed or said wrongly; empty when it passes.
pub fn check(s: &Scenario, reply: &str) -> Vec<String> {
    let r = normalise(reply);
    let mut why = Vec::new();
    for e in &s.expect {
        if !r.contains(&normalise(e)) {
            why.push(format!("missing \"{e}\""));
        }
    }
    for f in &s.forbid {
        if !f.trim().is_empty() && r.contains(&normalise(f)) {
            why.push(format!("says \"{f}\""));
        }
    }
    why
}

pub fn parse(file: &str, text: &str, problems: &mut Vec<Problem>) -> Vec<Scenario> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Scenario>(line) {
            Ok(s) if s.text.trim().is_empty() => {
                problems.push(Problem::at(file, i + 1, "\"text\" is empty"))
            }
            Ok(s) if s.expect.is_empty() && s.forbid.is_empty() => problems.push(Problem::at(
                file,
                i + 1,
                "a scenario needs at least one \"expect\" or \"forbid\" string",
            )),
            Ok(s) => out.push(s),
            Err(e) => problems.push(Problem::at(
                file,
                i + 1,
                format!("not a scenario ({{\"text\",\"expect\":[..],\"forbid\":[..]}}): {e}"),
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_pass_on_every_expect_and_no_forbid() {
        let s = Scenario {
            text: "退货几天".into(),
            expect: vec!["15 天".into(), "Free Return".into()],
            forbid: vec!["7天".into()],
        };
        assert!(check(&s, "支持15  天无理由退货 (free return)").is_empty());
        assert_eq!(
            check(&s, "支持7天无理由退货"),
            [
                "missing \"15 天\"",
                "missing \"Free Return\"",
                "says \"7天\""
            ]
        );
        let mut p = Vec::new();
        let parsed = parse(
            "scenarios.jsonl",
            "{\"text\":\"a\",\"expect\":[\"b\"]}\n\n{\"text\":\"\",\"expect\":[\"b\"]}\n{\"text\":\"c\"}\nnot json\n",
            &mut p,
        );
        assert_eq!(parsed.len(), 1);
        let lines: Vec<Option<usize>> = p.iter().map(|x| x.line).collect();
        assert_eq!(lines, [Some(3), Some(4), Some(5)]);
    }
}
