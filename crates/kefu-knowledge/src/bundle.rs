//! The knowledge bundle: a directory a shop maintains, imported whole. Exactly these files
//! are accepted, each optional (docs/knowledge.md):
//!
//! | file | what |
//! |---|---|
//! | `faq.md` | questions (`##` headings) and answers, Chinese and/or English |
//! | `products/*.html` | product detail pages as the storefront serves them |
//! | `products/*.jsonl` | products in Shopify's product JSON, one per line |
//! | `promotions.yaml` | the shop's promotions |
//! | `scenarios.jsonl` | the shop's own test questions |
//!
//! A bundle with any problem is refused whole, with every problem by file and line.
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{
    faq::{self, FaqEntry},
    html,
    product::Product,
    promotions::{self, PromotionsFile},
    scenario::{self, Scenario},
    shopify,
};

/// Largest file of a bundle.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;
/// Largest bundle, all files together.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;
/// Most files in a bundle.
pub const MAX_FILES: usize = 10_000;

/// One thing wrong with a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The file, relative to the bundle (`products/tent.html`).
    pub file: String,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn at(file: &str, line: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: Some(line),
            message: message.into(),
        }
    }

    pub fn whole(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem of a refused bundle.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct BundleError(pub Vec<Problem>);

/// A parsed bundle.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub faq: Vec<FaqEntry>,
    pub products: Vec<Product>,
    pub promotions: Option<PromotionsFile>,
    pub scenarios: Vec<Scenario>,
}

fn kind_of(path: &str) -> Option<&'static str> {
    match path {
        "faq.md" => Some("faq"),
        "promotions.yaml" => Some("promotions"),
        "scenarios.jsonl" => Some("scenarios"),
        p => {
            let name = p.strip_prefix("products/")?;
            if name.contains('/') || name.starts_with('.') {
                None
            } else if name.ends_with(".html") {
                Some("html")
            } else if name.ends_with(".jsonl") {
                Some("jsonl")
            } else {
                None
            }
        }
    }
}

impl Bundle {
    /// Parses a bundle from its files (path relative to the bundle, bytes).
    pub fn from_files(files: &[(String, Vec<u8>)]) -> Result<Bundle, BundleError> {
        let mut problems = Vec::new();
        let mut b = Bundle::default();
        if files.len() > MAX_FILES {
            return Err(BundleError(vec![Problem::whole(
                ".",
                format!("more than {MAX_FILES} files"),
            )]));
        }
        let total: usize = files.iter().map(|(_, d)| d.len()).sum();
        if total > MAX_BUNDLE_BYTES {
            return Err(BundleError(vec![Problem::whole(
                ".",
                format!("{total} bytes: a bundle is at most {MAX_BUNDLE_BYTES}"),
            )]));
        }
        let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, data) in sorted {
            let Some(kind) = kind_of(path) else {
                problems.push(Problem::whole(
                    path,
                    "not a bundle file: accepted are faq.md, products/*.html, products/*.jsonl, promotions.yaml and scenarios.jsonl",
                ));
                continue;
            };
            if data.len() > MAX_FILE_BYTES {
                problems.push(Problem::whole(
                    path,
                    format!("larger than {MAX_FILE_BYTES} bytes"),
                ));
                continue;
            }
            let Ok(text) = std::str::from_utf8(data) else {
                problems.push(Problem::whole(path, "not UTF-8 text"));
                continue;
            };
            match kind {
                "faq" => b.faq = faq::parse(path, text, &mut problems),
                "promotions" => b.promotions = promotions::parse(path, text, &mut problems),
                "scenarios" => b.scenarios = scenario::parse(path, text, &mut problems),
                "html" => b.products.extend(html::parse(path, text, &mut problems)),
                _ => b.products.extend(shopify::parse(path, text, &mut problems)),
            }
        }
        // Shopify products carry no currency: the shop's is the one of its promotions.
        if let Some(c) = b.promotions.as_ref().map(|p| p.currency.clone()) {
            for p in b.products.iter_mut().filter(|p| p.currency.is_none()) {
                p.currency = Some(c.clone());
            }
        }
        let mut ids = std::collections::HashMap::new();
        for p in &b.products {
            if let Some(first) = ids.insert(p.id.clone(), p.source.clone()) {
                problems.push(Problem::whole(
                    &p.source,
                    format!("product id \"{}\" is also in {first}", p.id),
                ));
            }
        }
        if problems.is_empty() {
            Ok(b)
        } else {
            Err(BundleError(problems))
        }
    }

    /// Reads a bundle directory (only the accepted files; anything else is a problem).
    pub fn load_dir(dir: &Path) -> Result<Bundle, BundleError> {
        Self::from_files(&read_dir(dir)?)
    }
}

/// The files of a bundle directory, as [`Bundle::from_files`] takes them.
pub fn read_dir(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, BundleError> {
    let io = |p: &Path, e: std::io::Error| {
        BundleError(vec![Problem::whole(
            &p.display().to_string(),
            e.to_string(),
        )])
    };
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| io(&d, e))? {
            let entry = entry.map_err(|e| io(&d, e))?;
            let path = entry.path();
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            if rel.starts_with('.') || rel.contains("/.") {
                continue; // .git, .DS_Store
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((rel, std::fs::read(&path).map_err(|e| io(&path, e))?));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, text: &str) -> (String, Vec<u8>) {
        (path.to_owned(), text.as_bytes().to_vec())
    }

    #[test]
    fn every_problem_of_every_file_is_reported_and_nothing_is_kept() {
        let err = Bundle::from_files(&[
            f("faq.md", "## 退货\n\n15 天内可退。\n\n## 空的\n"),
            f(
                "products/a.jsonl",
                "{\"title\":\"A\",\"handle\":\"a\"}\n{\"title\":\"A2\",\"handle\":\"a\"}\n",
            ),
            f("promotions.yaml", "currency: cny\n"),
            f("scenarios.jsonl", "{\"text\":\"x\"}\n"),
            f("notes.txt", "hi"),
            f("products/sub/b.html", "<h1>B</h1>"),
            (String::from("products/c.html"), vec![0xff, 0xfe]),
        ])
        .expect_err("refused");
        let got: Vec<String> = err.0.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 7, "{got:#?}");
        assert!(got.iter().any(|p| p.starts_with("faq.md:5:")), "{got:#?}");
        assert!(
            got.iter()
                .any(|p| p.starts_with("notes.txt: not a bundle file"))
        );
        assert!(
            got.iter()
                .any(|p| p.starts_with("products/sub/b.html: not a bundle file"))
        );
        assert!(got.iter().any(|p| p.contains("products/c.html: not UTF-8")));
        assert!(
            got.iter()
                .any(|p| p.starts_with("promotions.yaml") && p.contains("ISO 4217"))
        );
        assert!(got.iter().any(|p| p.starts_with("scenarios.jsonl:1:")));
        assert!(
            got.iter()
                .any(|p| p.contains("product id \"a\" is also in"))
        );
    }

    #[test]
    fn a_good_bundle_parses_and_every_file_is_optional() {
        let b = Bundle::from_files(&[
            f("faq.md", "## Returns\n\nWithin 15 days.\n"),
            f(
                "products/hoodie.html",
                "<h1>Hoodie</h1><p class=price>$79</p>",
            ),
        ])
        .expect("parses");
        assert_eq!(
            (b.faq.len(), b.products.len(), b.scenarios.len()),
            (1, 1, 0)
        );
        assert!(b.promotions.is_none());
        assert_eq!(Bundle::from_files(&[]).expect("empty"), Bundle::default());
    }
}
