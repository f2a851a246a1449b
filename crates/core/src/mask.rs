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

#[cfg(test)]
mod tests {
    use super::*;

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
