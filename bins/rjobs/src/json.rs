//! A minimal JSON writer: enough for rjobs' flat records, with correct escaping.

use std::fmt::Write as _;

/// A JSON value.
pub enum Value {
    /// A string (escaped on output).
    Str(String),
    /// A number.
    Int(i64),
    /// true / false.
    Bool(bool),
    /// null.
    Null,
    /// An array.
    Array(Vec<Value>),
    /// An object, keys in the given order.
    Object(Vec<(&'static str, Value)>),
}

fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Value {
    /// Appends the JSON text.
    pub fn write(&self, out: &mut String) {
        match self {
            Value::Str(s) => escape(s, out),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Null => out.push_str("null"),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Value::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    escape(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Value;

    #[test]
    fn escaping() {
        let v = Value::Object(vec![
            ("a", Value::Str("q\"b\\n\n\u{1}é".into())),
            ("n", Value::Int(-3)),
            ("l", Value::Array(vec![Value::Bool(true), Value::Null])),
        ]);
        let mut s = String::new();
        v.write(&mut s);
        assert_eq!(s, r#"{"a":"q\"b\\n\n\u0001é","n":-3,"l":[true,null]}"#);
    }
}
