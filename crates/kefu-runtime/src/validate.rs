//! Request validation that collects every field violation, so a caller sees all problems at
//! once. [`Violations`] turns into a gRPC `InvalidArgument` status with a `BadRequest` detail
//! (see [`crate::grpc`]) and into an HTTP 400 JSON body.
use serde::Serialize;

/// One invalid field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Collected violations of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.to_owned(),
            description: description.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was violated.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// A required string with a length limit in characters and bytes.
    pub fn text(&mut self, field: &str, value: &str, max_chars: usize, max_bytes: usize) {
        if value.trim().is_empty() {
            self.add(field, "must not be empty");
        } else if value.len() > max_bytes {
            self.add(
                field,
                format!("must be at most {max_bytes} bytes (got {})", value.len()),
            );
        } else {
            let chars = value.chars().count();
            if chars > max_chars {
                self.add(
                    field,
                    format!("must be at most {max_chars} characters (got {chars})"),
                );
            }
        }
        if value.contains('\0') {
            self.add(field, "must not contain NUL characters");
        }
    }

    /// A required identifier: 1..=max characters of `[A-Za-z0-9._:@-]`.
    pub fn ident(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() {
            self.add(field, "must not be empty");
        } else if value.len() > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@'))
        {
            self.add(field, "may only contain A-Z, a-z, 0-9 and . _ - : @");
        }
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect();
        write!(f, "invalid request: {}", parts.join("; "))
    }
}

impl std::error::Error for Violations {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_all_violations() {
        let mut v = Violations::new();
        v.text("text", "", 10, 40);
        v.text("long", &"x".repeat(11), 10, 40);
        v.text("bytes", &"界".repeat(20), 100, 40);
        v.ident("shop_id", "bad shop", 64);
        v.ident("ok", "demo", 64);
        v.text("fine", "hello", 10, 40);
        let fields: Vec<_> = v.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["text", "long", "bytes", "shop_id"]);
        assert!(v.to_string().contains("text: must not be empty"));
    }
}
