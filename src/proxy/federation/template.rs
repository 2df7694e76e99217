//! Whether a URI is one a resource template (RFC 6570) describes, for routing `resources/read`
//! and subscriptions when URIs are not prefixed. A template is literal text and `{...}`
//! expressions: a simple `{var}` stands for text without `/`, `?` or `#` (what its expansion
//! leaves unencoded there), an expression with an operator (`{+path}`, `{/seg}`, `{?q}`, ...) for
//! any text. Matching is a bounded backtracking over the expressions.

/// A piece of a template.
#[derive(Debug, PartialEq)]
enum Part<'a> {
    Literal(&'a str),
    /// An expression; `true` when it may hold `/`, `?` and `#`.
    Expr(bool),
}

/// The pieces of `template`; `None` when a `{` is not closed.
fn parse(template: &str) -> Option<Vec<Part<'_>>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Part::Literal(&rest[..open]));
        }
        let close = rest[open..].find('}')? + open;
        let body = &rest[open + 1..close];
        let wide = body.starts_with(['+', '#', '/', '.', ';', '?', '&']);
        out.push(Part::Expr(wide));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Part::Literal(rest));
    }
    Some(out)
}

/// The most backtracking steps one match may take.
const MAX_STEPS: usize = 10_000;

fn matches_from(parts: &[Part<'_>], uri: &str, steps: &mut usize) -> bool {
    *steps += 1;
    if *steps > MAX_STEPS {
        return false;
    }
    match parts.split_first() {
        None => uri.is_empty(),
        Some((Part::Literal(l), rest)) => uri
            .strip_prefix(l)
            .is_some_and(|u| matches_from(rest, u, steps)),
        Some((Part::Expr(wide), rest)) => {
            // Every split of `uri` the expression may take, shortest first.
            for (i, c) in uri.char_indices().chain([(uri.len(), ' ')]) {
                if matches_from(rest, &uri[i..], steps) {
                    return true;
                }
                if i < uri.len() && !wide && matches!(c, '/' | '?' | '#') {
                    return false;
                }
            }
            false
        }
    }
}

/// Whether `uri` is one that `template` describes.
pub fn matches(template: &str, uri: &str) -> bool {
    let Some(parts) = parse(template) else {
        return false;
    };
    matches_from(&parts, uri, &mut 0)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn templates_match_the_uris_they_describe() {
        assert!(matches("mem://{x}", "mem://a"));
        assert!(matches("mem://{x}", "mem://"));
        assert!(
            !matches("mem://{x}", "mem://a/b"),
            "a simple expression holds no /"
        );
        assert!(matches("file:///{+path}", "file:///a/b/c.txt"));
        assert!(matches("users/{id}/posts/{post}", "users/7/posts/x"));
        assert!(!matches("users/{id}/posts/{post}", "users/7/likes/x"));
        assert!(matches(
            "test://static/resource/{id}",
            "test://static/resource/42"
        ));
        assert!(!matches(
            "test://static/resource/{id}",
            "other://static/resource/42"
        ));
        assert!(matches("plain://exact", "plain://exact"));
        assert!(!matches("plain://exact", "plain://exactly"));
        assert!(!matches("broken://{x", "broken://{x"));
        // Bounded, whatever the input.
        let t = "{+a}{+b}{+c}{+d}{+e}z";
        assert!(!matches(t, &"y".repeat(200)));
    }
}
