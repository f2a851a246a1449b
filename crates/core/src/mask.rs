//! Masking of personal data before it reaches a log line (invariant 7).

/// Masks an email for logs: `jane.doe@example.com` becomes `j***@example.com`.
/// Anything that does not look like an email is masked whole.
pub fn mask_email(email: &str) -> String {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            let first = local.chars().next().unwrap_or('*');
            format!("{first}***@{domain}")
        }
        _ => "***".to_string(),
    }
}

/// Masks every email-looking word in a free text (an API's error body, say), so a message
/// that echoes a customer's address can be logged or stored in a reason.
pub fn mask_emails_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('@') {
            let trimmed = word.trim_matches(|c: char| !c.is_alphanumeric());
            out.push_str(&word.replace(trimmed, &mask_email(trimmed)));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_whitespace()
            || matches!(
                c,
                '"' | '\'' | ',' | ';' | '<' | '>' | '(' | ')' | '[' | ']' | '{' | '}'
            )
        {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_inside_text_are_masked() {
        assert_eq!(
            mask_emails_in(
                r#"{"details":"customer Jane.Doe@Example.com exists", "x": "<a@b.co>"}"#
            ),
            r#"{"details":"customer J***@Example.com exists", "x": "<a***@b.co>"}"#
        );
        assert_eq!(mask_emails_in("no email here"), "no email here");
    }

    #[test]
    fn masks_local_part_and_keeps_domain() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("  X@y.org "), "X***@y.org");
    }

    #[test]
    fn masks_non_emails_whole() {
        assert_eq!(mask_email("not-an-email"), "***");
        assert_eq!(mask_email("@example.com"), "***");
    }
}
