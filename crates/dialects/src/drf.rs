//! What Django REST framework does with a request body before a view sees it, so the dialects
//! built on it (simplejwt, djoser) fail in its words: 415 for another media type, Python's JSON
//! parser messages, and per-field errors in the serializer's order.

use serde_json::{Map, Value, json};

use tessera_http::body::BodyError;

/// A DRF error: status and body.
pub type DrfError = (u16, Value);

/// DRF's answers for a request to retry later: its `Throttled` exception (429), and a 503.
pub fn retry_later(status: u16, secs: u64) -> DrfError {
    if status == 429 {
        let unit = if secs == 1 { "second" } else { "seconds" };
        (429, json!({"detail": format!("Request was throttled. Expected available in {secs} {unit}.")}))
    } else {
        (503, json!({"detail": "Service temporarily unavailable, try again later."}))
    }
}

/// DRF's JSONParser: the body must be `application/json`; an empty body is no data.
pub fn parse_json(content_type: Option<&str>, body: Result<&[u8], BodyError>) -> Result<Map<String, Value>, DrfError> {
    let body = match body {
        Ok(b) => b,
        Err(BodyError::TooLarge(_)) => return Err((413, json!({"detail": "Request body is too large."}))),
        Err(_) => return Err((400, json!({"detail": "The request body could not be read."}))),
    };
    let mime = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" {
        if body.is_empty() && mime.is_empty() {
            return Ok(Map::new());
        }
        let shown = content_type.unwrap_or("").trim();
        return Err((415, json!({"detail": format!("Unsupported media type \"{shown}\" in request.")})));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => {
            let kind = match other {
                Value::Array(_) => "list",
                Value::String(_) => "str",
                Value::Number(n) if n.is_f64() => "float",
                Value::Number(_) => "int",
                Value::Bool(_) => "bool",
                _ => "NoneType",
            };
            Err((400, json!({"non_field_errors": [format!("Invalid data. Expected a dictionary, but got {kind}.")]})))
        }
        Err(e) => Err((400, json!({"detail": format!("JSON parse error - {}", python_json_error(&e, body))}))),
    }
}

/// Python's `json` module's message for the same error, where serde_json's kind maps onto one.
fn python_json_error(e: &serde_json::Error, body: &[u8]) -> String {
    let text = e.to_string();
    let what = if text.starts_with("key must be a string") || text.starts_with("EOF while parsing an object") {
        "Expecting property name enclosed in double quotes"
    } else if text.starts_with("expected `,` or `}`") || text.starts_with("expected `,` or `]`") {
        "Expecting ',' delimiter"
    } else if text.starts_with("expected `:`") {
        "Expecting ':' delimiter"
    } else if text.starts_with("trailing characters") {
        "Extra data"
    } else if text.starts_with("EOF while parsing a string") {
        "Unterminated string starting at"
    } else {
        "Expecting value"
    };
    // serde_json counts columns from 1 at the failing byte, as Python does; Python also gives
    // the 0-based character offset.
    let (line, col) = (e.line().max(1), e.column().max(1));
    let mut offset = 0usize;
    let mut current = 1usize;
    for (i, b) in body.iter().enumerate() {
        if current == line {
            offset = i;
            break;
        }
        if *b == b'\n' {
            current += 1;
            offset = i + 1;
        }
    }
    let char_index = String::from_utf8_lossy(&body[..(offset + col - 1).min(body.len())]).chars().count();
    format!("{what}: line {line} column {col} (char {char_index})")
}

/// Python's `str.isspace()`: what DRF's `strip()` removes before its blank check. The OpenAPI
/// document's `NOT_BLANK` pattern is its complement.
pub fn python_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\x1c'..='\x20' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

/// A regular expression for "not blank" as DRF decides it: one character that is not Python
/// whitespace (see [`python_space`]).
pub const NOT_BLANK: &str = "[^\\t-\\r\\x1c-\\x20\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

/// A required string field, validated as DRF's CharField does. `errors` collects per-field
/// messages in declaration order.
pub fn char_field(data: &Map<String, Value>, name: &str, errors: &mut Map<String, Value>) -> Option<String> {
    let msg = match data.get(name) {
        None => "This field is required.",
        Some(Value::Null) => "This field may not be null.",
        Some(Value::String(s)) if s.chars().all(python_space) => "This field may not be blank.",
        Some(Value::String(s)) => return Some(s.clone()),
        Some(Value::Number(n)) => return Some(n.to_string()),
        Some(Value::Bool(b)) => return Some(if *b { "True".into() } else { "False".into() }),
        Some(_) => "Not a valid string.",
    };
    errors.insert(name.to_owned(), json!([msg]));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_what_python_strips() {
        for blank in ["", " ", "\t\n\x0b\x0c\r", "\x1c\x1d\x1e\x1f", "\u{85}\u{a0}\u{3000}"] {
            assert!(blank.chars().all(python_space), "{blank:?}");
        }
        for not_blank in ["a", " x ", "\u{feff}", "\x00"] {
            assert!(!not_blank.chars().all(python_space), "{not_blank:?}");
        }
    }

    #[test]
    fn malformed_json_gets_pythons_message() {
        let err = parse_json(Some("application/json"), Ok(b"{not json")).unwrap_err();
        assert_eq!(err.1["detail"], "JSON parse error - Expecting property name enclosed in double quotes: line 1 column 2 (char 1)");
        let err = parse_json(Some("application/json"), Ok(b"")).map(|m| m.len());
        assert_eq!(err, Ok(0));
    }

    #[test]
    fn other_media_types_get_415_in_drfs_words() {
        let err = parse_json(Some("application/x-www-form-urlencoded"), Ok(b"a=b")).unwrap_err();
        assert_eq!(err, (415, json!({"detail": "Unsupported media type \"application/x-www-form-urlencoded\" in request."})));
    }

    #[test]
    fn non_objects_are_refused_like_a_serializer_does() {
        let err = parse_json(Some("application/json"), Ok(b"[1]")).unwrap_err();
        assert_eq!(err.1, json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}));
    }

    #[test]
    fn char_fields_report_in_order() {
        let data = serde_json::from_str::<Map<String, Value>>(r#"{"password": ""}"#).unwrap();
        let mut errors = Map::new();
        assert!(char_field(&data, "username", &mut errors).is_none());
        assert!(char_field(&data, "password", &mut errors).is_none());
        assert_eq!(
            Value::Object(errors).to_string(),
            r#"{"username":["This field is required."],"password":["This field may not be blank."]}"#
        );
    }
}
