//! The Prometheus text exposition format (version 0.0.4): families with
//! `# HELP` and `# TYPE`, samples with escaped label values. Label values
//! are hostile text (process names, container names): backslash, double
//! quote and newline are escaped as the format requires.

use std::fmt::Write as _;

/// The content type a scrape answers with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family, all gauges here.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// Writes `families` in the text format, appending to `out`.
pub fn write(out: &mut String, families: &[Family]) {
    for family in families {
        let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
        let _ = writeln!(out, "# TYPE {} gauge", family.name);
        for sample in &family.samples {
            out.push_str(family.name);
            if !sample.labels.is_empty() {
                out.push('{');
                for (i, (name, value)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{name}=\"{}\"", escape_label(value));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(sample.value));
        }
    }
}

/// `\` → `\\`, `"` → `\"`, newline → `\n` (label values).
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `\` → `\\`, newline → `\n` (help text).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Integers without a fraction; the rest as Rust prints floats.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_escaped_labels() {
        let mut out = String::new();
        write(
            &mut out,
            &[Family {
                name: "portctl_listener_info",
                help: "A listening socket.",
                samples: vec![Sample {
                    labels: vec![("process", "a\"b\\c\nd".into()), ("port", "80".into())],
                    value: 1.0,
                }],
            }],
        );
        assert_eq!(
            out,
            "# HELP portctl_listener_info A listening socket.\n\
             # TYPE portctl_listener_info gauge\n\
             portctl_listener_info{process=\"a\\\"b\\\\c\\nd\",port=\"80\"} 1\n"
        );
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(3.0), "3");
    }
}
