//! Retrieval over a bundle's passages with tantivy: FAQ entries, product overviews and
//! product facts, tokenised with jieba (Chinese words; English words pass through) then
//! lower-cased and stemmed (English), ranked with BM25. A hit also says which share of the
//! question's content words the passage contains (its coverage), which is what the answers'
//! confidence rests on.
use std::collections::HashSet;

use tantivy::{
    DocAddress, Index as TantivyIndex, IndexWriter, Term,
    collector::TopDocs,
    query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery},
    schema::{FAST, Field, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions},
    tokenizer::{Language, LowerCaser, Stemmer, TextAnalyzer},
};

use crate::{Bundle, text};

/// What a passage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passage {
    /// `bundle.faq[i]`.
    Faq(usize),
    /// `bundle.products[i]` as a whole (title, category, tags, description).
    Product(usize),
    /// `bundle.products[i].facts[j]`.
    Fact(usize, usize),
}

/// Which passages a search looks at. The restriction is part of the query, so a shop with
/// thousands of products still finds its FAQ entries and one product's facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Faq,
    /// Products and their facts.
    Catalog,
    /// The facts of `bundle.products[i]`.
    FactsOf(usize),
}

impl Scope {
    fn term(self) -> Option<String> {
        match self {
            Scope::All => None,
            Scope::Faq => Some("faq".into()),
            Scope::Catalog => Some("catalog".into()),
            Scope::FactsOf(i) => Some(format!("p{i}")),
        }
    }
}

/// A passage that matched, with its BM25 score and coverage (0–1).
#[derive(Clone, Debug)]
pub struct Hit {
    pub passage: Passage,
    pub score: f32,
    pub coverage: f32,
}

/// Words that carry no topic, in questions (Chinese particles and question words, English
/// stop words): they neither match nor count toward coverage.
const STOP: &[&str] = &[
    "的",
    "了",
    "吗",
    "呢",
    "吧",
    "啊",
    "呀",
    "是",
    "我",
    "你",
    "您",
    "我们",
    "你们",
    "他",
    "她",
    "它",
    "这",
    "那",
    "这个",
    "那个",
    "这款",
    "那款",
    "有",
    "没有",
    "怎么",
    "怎么样",
    "什么",
    "多少",
    "哪",
    "哪个",
    "哪些",
    "几",
    "可以",
    "能",
    "能不能",
    "会",
    "要",
    "想",
    "请问",
    "请",
    "一下",
    "和",
    "与",
    "或",
    "及",
    "在",
    "吗？",
    "么",
    "就",
    "都",
    "也",
    "还",
    "又",
    "把",
    "被",
    "给",
    "对",
    "从",
    "到",
    "为",
    "以",
    "之",
    "下",
    "上",
    "中",
    "个",
    "些",
    "的话",
    "自己",
    "东西",
    "一般",
    "现在",
    "还是",
    "如果",
    "就是",
    "然后",
    "已经",
    "一点",
    "这样",
    "那么",
    "啦",
    "哦",
    "嘛",
    "哈",
    "a",
    "an",
    "the",
    "is",
    "are",
    "was",
    "be",
    "do",
    "doe",
    "does",
    "did",
    "i",
    "you",
    "we",
    "it",
    "my",
    "your",
    "our",
    "of",
    "to",
    "in",
    "on",
    "for",
    "and",
    "or",
    "can",
    "could",
    "what",
    "how",
    "which",
    "when",
    "where",
    "there",
    "this",
    "that",
    "with",
    "me",
    "have",
    "has",
    "if",
    "any",
    "pleas",
    "please",
    "much",
    "mani",
    "many",
    "about",
    "at",
    "by",
    "from",
    "as",
    "will",
    "would",
    "should",
    "may",
    "get",
    "got",
];

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(tantivy_jieba::JiebaTokenizer::new())
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The content words of a text, as the index sees them.
pub fn terms(text: &str) -> Vec<String> {
    let mut a = analyzer();
    let mut stream = a.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        let t = stream.token().text.trim();
        if t.is_empty()
            || !t.chars().any(char::is_alphanumeric)
            || STOP.contains(&t)
            || out.iter().any(|x: &String| x == t)
        {
            continue;
        }
        out.push(t.to_owned());
    }
    out
}

/// A bundle's passages in a tantivy index (in memory).
pub struct Index {
    index: TantivyIndex,
    reader: tantivy::IndexReader,
    text: Field,
    title: Field,
    scope: Field,
    passages: Vec<Passage>,
    /// The terms of each passage (title and text), for coverage.
    passage_terms: Vec<HashSet<String>>,
    /// Each passage's text, normalised: a Chinese word of a question is covered where the
    /// passage has it anywhere, whatever the segmenter made of the passage (退 in 退货,
    /// 退货 in 退货运费, which jieba cuts as 退/货运费).
    passage_text: Vec<String>,
    /// Every term of the bundle, and all its text (for Chinese words inside others).
    vocabulary: HashSet<String>,
    all_text: String,
}

impl Index {
    pub fn build(bundle: &Bundle) -> tantivy::Result<Index> {
        let mut sb = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer("kefu")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let opts = TextOptions::default().set_indexing_options(indexing);
        let text = sb.add_text_field("text", opts.clone());
        let title = sb.add_text_field("title", opts);
        let scope = sb.add_text_field("scope", STRING);
        let id = sb.add_u64_field("id", FAST);
        let index = TantivyIndex::create_in_ram(sb.build());
        index.tokenizers().register("kefu", analyzer());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 50_000_000)?;
        let mut passages = Vec::new();
        let mut passage_terms = Vec::new();
        let mut passage_text = Vec::new();
        let mut add = |passage: Passage, t: String, body: String| -> tantivy::Result<()> {
            let mut doc = tantivy::TantivyDocument::default();
            doc.add_u64(id, passages.len() as u64);
            doc.add_text(title, &t);
            doc.add_text(text, &body);
            match passage {
                Passage::Faq(_) => doc.add_text(scope, "faq"),
                Passage::Product(_) => doc.add_text(scope, "catalog"),
                Passage::Fact(i, _) => {
                    doc.add_text(scope, "catalog");
                    doc.add_text(scope, format!("p{i}"));
                }
            }
            passage_terms.push(terms(&format!("{t} {body}")).into_iter().collect());
            passage_text.push(text::normalise(&format!("{t} {body}")));
            passages.push(passage);
            writer.add_document(doc)?;
            Ok(())
        };
        for (i, f) in bundle.faq.iter().enumerate() {
            add(Passage::Faq(i), f.question.clone(), f.answer.clone())?;
        }
        for (i, p) in bundle.products.iter().enumerate() {
            add(
                Passage::Product(i),
                p.title.clone(),
                format!("{} {} {}", p.category, p.tags.join(" "), p.description),
            )?;
            for (j, f) in p.facts.iter().enumerate() {
                add(
                    Passage::Fact(i, j),
                    format!("{} {}", p.title, f.name),
                    f.value.clone(),
                )?;
            }
        }
        writer.commit()?;
        let reader = index.reader()?;
        Ok(Index {
            index,
            reader,
            text,
            title,
            scope,
            vocabulary: passage_terms.iter().flatten().cloned().collect(),
            all_text: passage_text.join("\n"),
            passages,
            passage_terms,
            passage_text,
        })
    }

    /// The best passages for a question (at most `limit`), restricted to `only` when given.
    pub fn search(&self, question: &str, limit: usize, scope: Scope) -> Vec<Hit> {
        let groups: Vec<Vec<String>> = terms(question).into_iter().map(|t| vec![t]).collect();
        self.search_groups(&groups, limit, scope)
    }

    /// Whether any passage of the bundle has `term` (Chinese: anywhere in its text).
    pub fn knows(&self, term: &str) -> bool {
        has_term(&self.vocabulary, &self.all_text, term)
    }

    /// A search for a question given as groups of words that stand for each other (a word and
    /// its synonyms). Coverage is the share of groups a passage has, counting only the groups
    /// the bundle has anywhere: a word no passage could contain ("wedding" in a shop that
    /// never mentions one) makes no passage a worse answer, and a question of nothing but
    /// such words finds nothing.
    pub fn search_groups(&self, groups: &[Vec<String>], limit: usize, scope: Scope) -> Vec<Hit> {
        let known: Vec<&Vec<String>> = groups
            .iter()
            .filter(|g| g.iter().any(|t| self.knows(t)))
            .collect();
        if known.is_empty() || self.passages.is_empty() {
            return Vec::new();
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for g in &known {
            for (n, t) in g.iter().enumerate() {
                // Synonyms count a little less than the word asked.
                let weight = if n == 0 { 1.0 } else { 0.7 };
                for (field, boost) in [(self.text, 1.0), (self.title, 2.0)] {
                    clauses.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(
                            Box::new(TermQuery::new(
                                Term::from_field_text(field, t),
                                IndexRecordOption::WithFreqs,
                            )),
                            boost * weight,
                        )),
                    ));
                }
            }
        }
        let mut query: Box<dyn Query> = Box::new(BooleanQuery::new(clauses));
        if let Some(t) = scope.term() {
            query = Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(self.scope, &t),
                        IndexRecordOption::Basic,
                    )),
                ),
            ]));
        }
        let searcher = self.reader.searcher();
        let Ok(top) = searcher.search(
            &query,
            &TopDocs::with_limit(limit.max(1) * 8).order_by_score(),
        ) else {
            return Vec::new();
        };
        let mut hits = Vec::new();
        for (score, addr) in top {
            let Some(i) = self.passage_of(&searcher, addr) else {
                continue;
            };
            let passage = self.passages[i];
            let covered = known.iter().filter(|g| self.has(i, g)).count();
            hits.push(Hit {
                passage,
                score,
                coverage: covered as f32 / known.len() as f32,
            });
            if hits.len() == limit {
                break;
            }
        }
        hits
    }

    /// Whether passage `i` has any word of `group`.
    fn has(&self, i: usize, group: &[String]) -> bool {
        group
            .iter()
            .any(|t| has_term(&self.passage_terms[i], &self.passage_text[i], t))
    }

    fn passage_of(&self, searcher: &tantivy::Searcher, addr: DocAddress) -> Option<usize> {
        let col = searcher
            .segment_reader(addr.segment_ord)
            .fast_fields()
            .u64("id")
            .ok()?;
        col.first(addr.doc_id).map(|v| v as usize)
    }

    pub fn len(&self) -> usize {
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// The tantivy index (for tests and diagnostics).
    pub fn tantivy(&self) -> &TantivyIndex {
        &self.index
    }
}

/// Whether a passage with the index terms `words` and the normalised text `norm` has `term`:
/// as a term, or — a Chinese word — anywhere in its text, whatever the segmenter made of it
/// (退货 in 退货运费, which jieba cuts as 退/货运费).
pub fn has_term(words: &HashSet<String>, norm: &str, term: &str) -> bool {
    words.contains(term) || (term.chars().any(text::is_han) && norm.contains(term))
}

/// Whether `question` mentions `phrase` (case- and width-insensitive).
pub fn mentions(question: &str, phrase: &str) -> bool {
    let p = text::normalise(phrase);
    !p.is_empty() && text::normalise(question).contains(&p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Bundle;

    fn bundle() -> Bundle {
        Bundle::from_files(&[
            (
                "faq.md".into(),
                "## 退货政策\n\n收货后15天内可无理由退货。\n\n## 发货时间\n\n付款后48小时内发货。\n\n## Shipping to the US\n\nWe ship to the US in 7-12 business days.\n"
                    .as_bytes()
                    .to_vec(),
            ),
            (
                "products/hoodie.html".into(),
                "<h1>Cloud Hoodie</h1><table><tr><th>Material</th><td>80% cotton</td></tr></table>".as_bytes().to_vec(),
            ),
        ])
        .expect("bundle")
    }

    #[test]
    fn chinese_and_english_questions_find_their_passage() {
        let b = bundle();
        let idx = Index::build(&b).expect("index");
        assert_eq!(idx.len(), 5);
        let hits = idx.search("我想退货，可以吗", 3, Scope::All);
        assert_eq!(hits[0].passage, Passage::Faq(0), "{hits:?}");
        assert!(hits[0].coverage > 0.99, "{hits:?}");
        let hits = idx.search("how long does shipping to the US take?", 3, Scope::All);
        assert_eq!(hits[0].passage, Passage::Faq(2), "{hits:?}");
        let hits = idx.search("what is the hoodie made of? material", 3, Scope::FactsOf(0));
        assert_eq!(hits[0].passage, Passage::Fact(0, 0), "{hits:?}");
        assert!(
            idx.search("的 了 吗", 3, Scope::All).is_empty(),
            "stop words match nothing"
        );
        assert!(mentions("这款 CLOUD hoodie 有XL吗", "Cloud Hoodie"));
    }
}
