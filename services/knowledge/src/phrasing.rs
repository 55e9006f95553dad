//! Optional LLM phrasing: an OpenAI-compatible `/v1/chat/completions` provider (vLLM,
//! llama.cpp server, Qwen and most hosted models speak it) rewrites an extractive answer into
//! a natural reply. Off unless `KEFU_LLM_URL` is set (docs/knowledge.md).
//!
//! The model is given only the question and the facts the extractive answer carries; its
//! reply is discarded for the extractive one when it carries a number (digits, Chinese or
//! English numerals) that the facts do not, drops the order link, is empty, says it cannot
//! answer, or is too long; a timeout or any failure falls back too. Phrasing never blocks an
//! answer for longer than the timeout.
use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Args as ClapArgs;
use prometheus_client::metrics::{counter::Counter, family::Family};
use serde_json::{Value, json};

/// The provider's settings (`KEFU_LLM_*`).
#[derive(Clone, Debug, ClapArgs)]
pub struct LlmArgs {
    /// Base URL of an OpenAI-compatible API, up to `/v1` (`http://vllm:8000/v1`); requests go
    /// to `{url}/chat/completions`. Empty: phrasing off (extractive answers).
    #[arg(long = "llm-url", env = "KEFU_LLM_URL", default_value = "")]
    pub url: String,
    /// The model name the provider serves.
    #[arg(long = "llm-model", env = "KEFU_LLM_MODEL", default_value = "")]
    pub model: String,
    /// File holding the provider's API key (a mounted Secret); none: no Authorization header.
    #[arg(long = "llm-api-key-file", env = "KEFU_LLM_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Longest wait for a phrased reply, in milliseconds; then the extractive answer is used.
    #[arg(
        long = "llm-timeout-ms",
        env = "KEFU_LLM_TIMEOUT_MS",
        default_value_t = 2500
    )]
    pub timeout_ms: u64,
    /// Ask for a streamed reply (server-sent events) instead of one JSON body.
    #[arg(long = "llm-stream", env = "KEFU_LLM_STREAM", default_value_t = false)]
    pub stream: bool,
}

/// What became of a phrasing attempt (the `outcome` label of `kefu_knowledge_phrasing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Phrased,
    /// The reply carried a number the facts do not.
    InventedNumber,
    /// Empty, "cannot answer", too long, or the order link dropped.
    Unusable,
    Timeout,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Phrased => "phrased",
            Outcome::InventedNumber => "invented_number",
            Outcome::Unusable => "unusable",
            Outcome::Timeout => "timeout",
            Outcome::Failed => "failed",
        }
    }
}

/// The model's reply when the facts do not answer the question.
const NO_ANSWER: &str = "NO_ANSWER";
/// Longest phrased reply accepted, in characters.
const MAX_REPLY_CHARS: usize = 1200;
/// Largest provider response read, in bytes.
const MAX_BODY_BYTES: usize = 256 * 1024;

pub struct Phraser {
    http: reqwest::Client,
    endpoint: String,
    model: String,
    key: Option<String>,
    timeout: Duration,
    stream: bool,
    outcomes: Family<Vec<(String, String)>, Counter>,
}

impl Phraser {
    /// `None` when phrasing is off (no URL).
    pub fn from_args(
        a: &LlmArgs,
        outcomes: Family<Vec<(String, String)>, Counter>,
    ) -> anyhow::Result<Option<Self>> {
        if a.url.trim().is_empty() {
            return Ok(None);
        }
        let base = reqwest::Url::parse(a.url.trim()).context("KEFU_LLM_URL")?;
        if !matches!(base.scheme(), "http" | "https") {
            anyhow::bail!("KEFU_LLM_URL must be http(s)");
        }
        if a.model.trim().is_empty() {
            anyhow::bail!("KEFU_LLM_MODEL must name the model when KEFU_LLM_URL is set");
        }
        let key = match &a.api_key_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?
                    .trim()
                    .to_owned(),
            )
            .filter(|k| !k.is_empty()),
            None => None,
        };
        let timeout = Duration::from_millis(a.timeout_ms.max(1));
        Ok(Some(Self {
            http: reqwest::Client::builder()
                .connect_timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            endpoint: format!("{}/chat/completions", a.url.trim().trim_end_matches('/')),
            model: a.model.trim().to_owned(),
            key,
            timeout,
            stream: a.stream,
            outcomes,
        }))
    }

    /// The extractive `answer` to `question` rephrased, or `None` (use `answer` as it is).
    pub async fn phrase(&self, question: &str, answer: &str, language: &str) -> Option<String> {
        let (outcome, text) = match tokio::time::timeout(
            self.timeout,
            self.ask(question, answer, language),
        )
        .await
        {
            Err(_) => (Outcome::Timeout, None),
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "LLM phrasing failed; extractive answer used");
                (Outcome::Failed, None)
            }
            Ok(Ok(reply)) => match check(&reply, answer) {
                Ok(t) => (Outcome::Phrased, Some(t)),
                Err(o) => (o, None),
            },
        };
        self.outcomes
            .get_or_create(&vec![("outcome".into(), outcome.as_str().into())])
            .inc();
        text
    }

    async fn ask(&self, question: &str, facts: &str, language: &str) -> anyhow::Result<String> {
        let body = request_body(&self.model, question, facts, language, self.stream);
        let mut req = self.http.post(&self.endpoint).json(&body);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let mut resp = req.send().await?;
        let status = resp.status();
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            buf.extend_from_slice(&chunk);
            if buf.len() > MAX_BODY_BYTES {
                anyhow::bail!("response larger than {MAX_BODY_BYTES} bytes");
            }
        }
        if !status.is_success() {
            anyhow::bail!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&buf)
                    .chars()
                    .take(200)
                    .collect::<String>()
            );
        }
        let text = String::from_utf8(buf).context("response is not UTF-8")?;
        if self.stream {
            from_events(&text)
        } else {
            let v: Value = serde_json::from_str(&text).context("response is not JSON")?;
            v["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_owned)
                .context("no choices[0].message.content")
        }
    }
}

/// The chat completion request: the instructions, then the question and the facts.
pub fn request_body(
    model: &str,
    question: &str,
    facts: &str,
    language: &str,
    stream: bool,
) -> Value {
    let lang = if language == "zh" {
        "Chinese (简体中文)"
    } else {
        "English"
    };
    let system = format!(
        "You are a shop's customer service assistant. Rewrite the FACTS into a short, friendly \
         reply to the customer's QUESTION, in {lang}. Use only the FACTS: never add a number, \
         price, date, duration, percentage or policy that is not in them, and keep any link \
         exactly as written. If the FACTS do not answer the QUESTION, reply exactly {NO_ANSWER}."
    );
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": format!("QUESTION: {question}\n\nFACTS:\n{facts}")},
        ],
        "temperature": 0.2,
        "max_tokens": 400,
        "stream": stream,
    })
}

/// The content of a streamed reply: `data: {…choices[0].delta.content…}` events up to
/// `data: [DONE]`.
fn from_events(body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut done = false;
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim();
        if data == "[DONE]" {
            done = true;
            break;
        }
        let v: Value = serde_json::from_str(data).context("an event is not JSON")?;
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            out.push_str(t);
        }
    }
    if !done {
        anyhow::bail!("the stream ended without [DONE]");
    }
    Ok(out)
}

/// A phrased reply accepted, or why not.
pub fn check(reply: &str, facts: &str) -> Result<String, Outcome> {
    let reply = reply.trim();
    if reply.is_empty() || reply.contains(NO_ANSWER) || reply.chars().count() > MAX_REPLY_CHARS {
        return Err(Outcome::Unusable);
    }
    let known = all_numbers(facts);
    if all_numbers(reply).iter().any(|n| !known.contains(n)) {
        return Err(Outcome::InventedNumber);
    }
    // The order link (the extractive answer's URLs) must survive as written.
    for url in facts.split_whitespace().filter(|w| w.starts_with("http")) {
        if !reply.contains(url) {
            return Err(Outcome::Unusable);
        }
    }
    Ok(reply.to_owned())
}

/// Every number a text states: digits (`15`, `¥1,299.00`), Chinese numerals (`十五`, `两`)
/// and English number words (`fifteen`, `thirty`), as digits.
pub fn all_numbers(s: &str) -> Vec<String> {
    let mut out = kefu_knowledge::text::numbers(s);
    out.extend(chinese_numbers(s).into_iter().map(|n| n.to_string()));
    let words: Vec<String> = s
        .split(|c: char| !c.is_ascii_alphabetic() && c != '-')
        .map(str::to_ascii_lowercase)
        .collect();
    for w in words {
        let mut total = 0u64;
        let mut any = false;
        for part in w.split('-') {
            if let Some(n) = english_word(part) {
                total += n;
                any = true;
            }
        }
        if any {
            out.push(total.to_string());
        }
    }
    out
}

fn english_word(w: &str) -> Option<u64> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if let Some(i) = ONES.iter().position(|x| *x == w) {
        return Some(i as u64);
    }
    if let Some(i) = TENS.iter().position(|x| *x == w) {
        return Some(20 + 10 * i as u64);
    }
    match w {
        "hundred" => Some(100),
        "thousand" => Some(1000),
        "dozen" => Some(12),
        _ => None,
    }
}

/// Runs of Chinese numerals as numbers: `十五` 15, `一百二十` 120, `两千` 2000, `三` 3.
fn chinese_numbers(s: &str) -> Vec<u64> {
    let digit = |c: char| -> Option<u64> {
        Some(match c {
            '零' | '〇' => 0,
            '一' | '壹' => 1,
            '二' | '两' | '贰' => 2,
            '三' | '叁' => 3,
            '四' | '肆' => 4,
            '五' | '伍' => 5,
            '六' | '陆' => 6,
            '七' | '柒' => 7,
            '八' | '捌' => 8,
            '九' | '玖' => 9,
            _ => return None,
        })
    };
    let unit = |c: char| -> Option<u64> {
        Some(match c {
            '十' | '拾' => 10,
            '百' | '佰' => 100,
            '千' | '仟' => 1000,
            '万' => 10_000,
            _ => return None,
        })
    };
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if digit(chars[i]).is_none() && unit(chars[i]).is_none() {
            i += 1;
            continue;
        }
        // 一 alone inside words (一起, 一下, 统一) is not a quantity; a run of one 一 is
        // skipped unless a unit follows.
        let start = i;
        let (mut total, mut section, mut current) = (0u64, 0u64, 0u64);
        while i < chars.len() {
            let c = chars[i];
            if let Some(d) = digit(c) {
                current = d;
            } else if let Some(u) = unit(c) {
                if u == 10_000 {
                    total += (section + current) * u;
                    section = 0;
                } else {
                    section += current.max(if u == 10 { 1 } else { 0 }) * u;
                }
                current = 0;
            } else {
                break;
            }
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        if run == "一" || run == "万" {
            continue;
        }
        out.push(total + section + current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_form() {
        assert_eq!(chinese_numbers("十五天内"), [15]);
        assert_eq!(chinese_numbers("一百二十元，两千件，三天"), [120, 2000, 3]);
        assert_eq!(chinese_numbers("可以一起用"), Vec::<u64>::new());
        assert!(all_numbers("within fifteen days").contains(&"15".into()));
        assert!(all_numbers("twenty-five percent").contains(&"25".into()));
        assert!(all_numbers("满99元").contains(&"99".into()));
    }

    #[test]
    fn a_reply_with_a_number_not_in_the_facts_is_refused() {
        let facts = "收货后15天内可无理由退货，运费由买家承担。";
        assert_eq!(
            check(
                "亲，收货十五天内都可以无理由退货哦，运费需要您承担。",
                facts
            ),
            Ok("亲，收货十五天内都可以无理由退货哦，运费需要您承担。".into())
        );
        assert_eq!(
            check("亲，30天内可以退货哦。", facts),
            Err(Outcome::InventedNumber)
        );
        assert_eq!(
            check(
                "You can return it within thirty days.",
                "Returns within 15 days."
            ),
            Err(Outcome::InventedNumber)
        );
        assert_eq!(check("NO_ANSWER", facts), Err(Outcome::Unusable));
        assert_eq!(
            check(
                "It's in stock!",
                "Tent: in stock. Order here: https://shop.example/p/tent"
            ),
            Err(Outcome::Unusable),
            "the order link must survive"
        );
    }

    #[test]
    fn streamed_replies_are_assembled() {
        let body = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n\
                    data: [DONE]\n\n";
        assert_eq!(from_events(body).unwrap(), "Hello");
        assert!(
            from_events("data: {\"choices\":[]}\n").is_err(),
            "no [DONE]"
        );
    }
}
