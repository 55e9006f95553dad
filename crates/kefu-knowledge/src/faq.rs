//! `faq.md`: Markdown written by shop staff. Each `##` heading is a question or topic; the
//! text under it (paragraphs, lists, tables, `###` sub-headings) until the next `#`/`##`
//! heading is its answer. Text before the first `##` is ignored (a title, an introduction).
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};

use crate::{bundle::Problem, text};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaqEntry {
    pub question: String,
    /// The answer as plain text: one line per paragraph, list item or table row.
    pub answer: String,
    /// `zh` or `en`.
    pub language: String,
    /// Line of the heading in `faq.md`.
    pub line: usize,
}

struct Open {
    question: String,
    answer: String,
    line: usize,
}

fn finish(file: &str, open: Option<Open>, out: &mut Vec<FaqEntry>, problems: &mut Vec<Problem>) {
    let Some(o) = open else { return };
    let question = text::squash(&o.question);
    let answer = o
        .answer
        .lines()
        .map(text::squash)
        .filter(|l| !l.is_empty() && l != "-")
        .collect::<Vec<_>>()
        .join("\n");
    if question.is_empty() {
        problems.push(Problem::at(file, o.line, "a ## heading without text"));
    } else if answer.is_empty() {
        problems.push(Problem::at(
            file,
            o.line,
            format!("\"{question}\" has no answer under it"),
        ));
    } else {
        out.push(FaqEntry {
            language: text::language(&format!("{question} {answer}")).to_owned(),
            question,
            answer,
            line: o.line,
        });
    }
}

pub fn parse(file: &str, source: &str, problems: &mut Vec<Problem>) -> Vec<FaqEntry> {
    let line_of = |offset: usize| source[..offset.min(source.len())].matches('\n').count() + 1;
    let mut out = Vec::new();
    let mut open: Option<Open> = None;
    let mut in_question = false;
    for (event, range) in Parser::new_ext(source, Options::ENABLE_TABLES).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) if level <= HeadingLevel::H2 => {
                finish(file, open.take(), &mut out, problems);
                if level == HeadingLevel::H2 {
                    open = Some(Open {
                        question: String::new(),
                        answer: String::new(),
                        line: line_of(range.start),
                    });
                    in_question = true;
                }
            }
            Event::End(TagEnd::Heading(level)) if level <= HeadingLevel::H2 => in_question = false,
            Event::Text(t) | Event::Code(t) => {
                if let Some(o) = open.as_mut() {
                    if in_question {
                        o.question.push_str(&t);
                    } else {
                        o.answer.push_str(&t);
                    }
                }
            }
            Event::SoftBreak => {
                if let Some(o) = open.as_mut() {
                    if in_question {
                        o.question.push(' ');
                    } else {
                        o.answer.push(' ');
                    }
                }
            }
            Event::HardBreak
            | Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::TableHead
                | TagEnd::TableRow
                | TagEnd::Item
                | TagEnd::List(_)
                | TagEnd::BlockQuote(_),
            ) => {
                if let Some(o) = open.as_mut().filter(|_| !in_question) {
                    o.answer.push('\n');
                }
            }
            Event::Start(Tag::Item) => {
                if let Some(o) = open.as_mut() {
                    o.answer.push_str("\n- ");
                }
            }
            Event::End(TagEnd::TableCell) => {
                if let Some(o) = open.as_mut() {
                    o.answer.push_str(" | ");
                }
            }
            _ => {}
        }
    }
    finish(file, open, &mut out, problems);
    if out.is_empty() && problems.iter().all(|p| p.file != file) {
        problems.push(Problem::whole(
            file,
            "no \"## question\" headings: each ## heading is a question, the text under it its answer",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAQ: &str = "# 小店客服手册\n\n欢迎光临。\n\n## 退货政策是什么？\n\n收货后 **15 天**内可无理由退货，\n商品需保持完好。\n\n- 定制商品不退\n- 内衣不退\n\n## What payment methods do you accept?\n\n| Method | Note |\n|---|---|\n| Alipay | all orders |\n| PayPal | cross-border only |\n\n## \n\n## 发票\n\n";

    #[test]
    fn headings_are_questions_and_the_text_under_them_answers() {
        let mut p = Vec::new();
        let entries = parse("faq.md", FAQ, &mut p);
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(entries[0].question, "退货政策是什么？");
        assert_eq!(
            entries[0].answer,
            "收货后 15 天内可无理由退货， 商品需保持完好。\n- 定制商品不退\n- 内衣不退"
        );
        assert_eq!((entries[0].language.as_str(), entries[0].line), ("zh", 5));
        assert_eq!(entries[1].language, "en");
        assert!(
            entries[1].answer.contains("PayPal | cross-border only"),
            "{}",
            entries[1].answer
        );
        let why: Vec<(Option<usize>, &str)> =
            p.iter().map(|x| (x.line, x.message.as_str())).collect();
        assert_eq!(why.len(), 2, "{why:?}");
        assert_eq!(why[0].0, Some(20));
        assert!(why[1].1.contains("发票") && why[1].0 == Some(22), "{why:?}");
    }

    #[test]
    fn a_file_without_questions_is_a_problem() {
        let mut p = Vec::new();
        assert!(parse("faq.md", "just prose\n", &mut p).is_empty());
        assert_eq!(p.len(), 1);
    }
}
