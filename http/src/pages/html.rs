//! HTML built from escaped pieces: a page is fixed markup written in this crate plus text
//! that always goes through [`escape`]. There is no way to put a caller's string into an
//! [`Html`] without escaping it, so no handler can forget to.
//!
//! Escaping follows the OWASP XSS Prevention Cheat Sheet, rules 1 and 2: `& < > " '` become
//! character references, which is enough for element content and for attribute values that
//! are always quoted (every attribute this crate writes is double-quoted).

use std::fmt::Write as _;

/// Markup that is safe to send: fixed text from this crate and escaped text from outside.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Html(String);

impl Html {
    pub fn new() -> Self {
        Self(String::with_capacity(2048))
    }

    /// Fixed markup written in this crate. Only `'static` text: a caller's string cannot
    /// be passed here by mistake.
    pub fn raw(mut self, markup: &'static str) -> Self {
        self.0.push_str(markup);
        self
    }

    /// Text from anywhere, escaped for element content or a double-quoted attribute.
    pub fn text(mut self, text: &str) -> Self {
        escape_into(&mut self.0, text);
        self
    }

    /// A number, which needs no escaping.
    pub fn number(mut self, n: u64) -> Self {
        let _ = write!(self.0, "{n}");
        self
    }

    /// Another fragment built the same way.
    pub fn fragment(mut self, other: Html) -> Self {
        self.0.push_str(&other.0);
        self
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text` with `& < > " '` replaced by character references.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script> it's"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt; it&#39;s"
        );
        assert_eq!(escape("plain café"), "plain café");
        let html = Html::new()
            .raw("<p title=\"")
            .text("\" onmouseover=\"x")
            .raw("\">")
            .text("<b>")
            .raw("</p>");
        assert_eq!(
            html.as_str(),
            "<p title=\"&quot; onmouseover=&quot;x\">&lt;b&gt;</p>"
        );
    }

    #[test]
    fn escaped_text_never_holds_a_markup_character() {
        // Every character that could open a tag, close an attribute or start a reference
        // appears only as the start of one of the five references.
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let out = escape(&all);
        assert!(!out.contains(['<', '>', '"', '\'']));
        let mut rest = out.as_str();
        while let Some(at) = rest.find('&') {
            let tail = &rest[at..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|r| tail.starts_with(r)),
                "{tail:.10}"
            );
            rest = &rest[at + 1..];
        }
    }
}
