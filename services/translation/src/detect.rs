//! Language detection with whatlang (trigram models for 69 languages), mapped to ISO 639-1.
//! Short texts are often unreliable; then the script decides (Han → zh, Hangul → ko, …) and
//! Latin-script text below 0.3 confidence falls back to English, the working language.
use whatlang::{Lang, Script};

#[derive(Clone, Debug, PartialEq)]
pub struct Detected {
    /// ISO 639-1 code, or `und`.
    pub language: String,
    pub confidence: f32,
    pub reliable: bool,
}

pub fn detect(text: &str) -> Detected {
    let info = whatlang::detect(text);
    if let Some(info) = &info
        && info.is_reliable()
        && let Some(code) = iso639_1(info.lang())
    {
        return Detected {
            language: code.into(),
            confidence: info.confidence() as f32,
            reliable: true,
        };
    }
    let by_script = match whatlang::detect_script(text) {
        Some(Script::Mandarin) => {
            // Kana anywhere means Japanese even when Han characters dominate.
            if text.chars().any(|c| ('\u{3040}'..='\u{30ff}').contains(&c)) {
                Some("ja")
            } else {
                Some("zh")
            }
        }
        Some(Script::Hiragana) | Some(Script::Katakana) => Some("ja"),
        Some(Script::Hangul) => Some("ko"),
        Some(Script::Thai) => Some("th"),
        Some(Script::Arabic) => Some("ar"),
        Some(Script::Cyrillic) => info
            .as_ref()
            .and_then(|i| iso639_1(i.lang()))
            .or(Some("ru")),
        Some(Script::Latin) => info
            .as_ref()
            .filter(|i| i.confidence() >= 0.3)
            .and_then(|i| iso639_1(i.lang()))
            .or(Some("en")),
        _ => None,
    };
    match by_script {
        Some(code) => Detected {
            language: code.into(),
            confidence: info
                .as_ref()
                .map(|i| i.confidence() as f32)
                .unwrap_or(0.5)
                .max(0.5),
            reliable: false,
        },
        None => Detected {
            language: "und".into(),
            confidence: 0.0,
            reliable: false,
        },
    }
}

fn iso639_1(lang: Lang) -> Option<&'static str> {
    Some(match lang {
        Lang::Eng => "en",
        Lang::Cmn => "zh",
        Lang::Jpn => "ja",
        Lang::Kor => "ko",
        Lang::Spa => "es",
        Lang::Fra => "fr",
        Lang::Deu => "de",
        Lang::Rus => "ru",
        Lang::Por => "pt",
        Lang::Ita => "it",
        Lang::Vie => "vi",
        Lang::Tha => "th",
        Lang::Ind => "id",
        Lang::Ara => "ar",
        Lang::Tur => "tr",
        Lang::Nld => "nl",
        Lang::Pol => "pl",
        Lang::Ukr => "uk",
        Lang::Hin => "hi",
        Lang::Swe => "sv",
        Lang::Dan => "da",
        Lang::Fin => "fi",
        Lang::Ces => "cs",
        Lang::Ell => "el",
        Lang::Heb => "he",
        Lang::Hun => "hu",
        Lang::Ron => "ro",
        Lang::Tgl => "tl",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_common_languages() {
        assert_eq!(detect("我的订单什么时候发货？").language, "zh");
        assert_eq!(
            detect("Where is my order? It has not arrived yet.").language,
            "en"
        );
        assert_eq!(
            detect("¿Dónde está mi pedido? Todavía no ha llegado a mi casa.").language,
            "es"
        );
        assert_eq!(detect("注文した商品はいつ届きますか").language, "ja");
        assert_eq!(detect("주문한 상품이 언제 도착하나요").language, "ko");
        assert_eq!(detect("hello").language, "en");
        assert_eq!(detect("12345 !!!").language, "und");
    }
}
