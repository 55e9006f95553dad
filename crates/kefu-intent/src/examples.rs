//! A shop's labelled examples as files: CSV with a header naming `sentence` (or `text`) and
//! `label` (or `intent`), or JSON lines with the same keys. `kefu intents train --data FILE`
//! and `kefu intents evaluate --data FILE` read them with [`read`] (docs/intent.md).
use std::io::{BufRead, Read};

use anyhow::{Context, bail};
use serde_json::Value;

/// The two file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

/// One `(text, label)` row as the file has it (trimmed in CSV; labels are checked by the
/// classifier, not here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub text: String,
    pub label: String,
}

/// Reads every row of `input`; `name` (the file's path) prefixes every error. An empty
/// file, a header without the two columns, a malformed row or a JSON line without the two
/// keys is an error.
pub fn read<R: Read>(input: R, format: Format, name: &str) -> anyhow::Result<Vec<Row>> {
    let mut out = Vec::new();
    match format {
        Format::Csv => {
            let mut r = csv::ReaderBuilder::new().flexible(false).from_reader(input);
            let headers = r.headers()?.clone();
            let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.trim()));
            let (Some(t), Some(l)) = (col(&["sentence", "text"]), col(&["label", "intent"])) else {
                bail!("{name}: the header must name `sentence` (or `text`) and `label`");
            };
            for (i, rec) in r.records().enumerate() {
                let rec = rec.with_context(|| format!("{name}: row {}", i + 2))?;
                out.push(Row {
                    text: rec.get(t).unwrap_or_default().trim().to_owned(),
                    label: rec.get(l).unwrap_or_default().trim().to_owned(),
                });
            }
        }
        Format::Jsonl => {
            for (i, line) in std::io::BufReader::new(input).lines().enumerate() {
                let line = line.with_context(|| format!("{name}:{}", i + 1))?;
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(&line)
                    .with_context(|| format!("{name}:{}: not JSON", i + 1))?;
                let field = |names: &[&str]| {
                    names
                        .iter()
                        .find_map(|n| v.get(*n).and_then(Value::as_str))
                        .map(str::to_owned)
                };
                let (Some(text), Some(label)) =
                    (field(&["sentence", "text"]), field(&["label", "intent"]))
                else {
                    bail!("{name}:{}: needs `sentence` (or `text`) and `label`", i + 1);
                };
                out.push(Row { text, label });
            }
        }
    }
    if out.is_empty() {
        bail!("{name}: no examples");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_csv_and_jsonl() {
        let csv = "text,label\n\"where is my order, please\",order_status\n退货,return_exchange\n";
        let rows = read(csv.as_bytes(), Format::Csv, "x.csv").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text, "where is my order, please");
        let jsonl = "{\"sentence\":\"hi\",\"intent\":\"greeting\"}\n\n";
        let rows = read(jsonl.as_bytes(), Format::Jsonl, "x.jsonl").unwrap();
        assert_eq!(
            rows,
            vec![Row {
                text: "hi".into(),
                label: "greeting".into()
            }]
        );
        assert!(read("a,b\n1,2\n".as_bytes(), Format::Csv, "x").is_err());
        assert!(read("text,label\n1\n".as_bytes(), Format::Csv, "x").is_err());
        assert!(read("".as_bytes(), Format::Jsonl, "x").is_err());
        assert!(read("{\"text\":1}".as_bytes(), Format::Jsonl, "x").is_err());
    }
}
