//! Email and password rules for accounts.

use crate::error::Problem;

/// Shortest password accepted, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest password accepted, in bytes (argon2 would take more; nobody needs more).
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// The normalized (trimmed, lower-cased) email, or the problem with it.
pub fn email(field: &str, raw: &str) -> Result<String, Problem> {
    let email = raw.trim().to_ascii_lowercase();
    let fail = |message: &str| Err(Problem::field(field, message));
    if email.is_empty() {
        return fail("is required");
    }
    if !email.is_ascii() {
        return fail("must contain only ASCII characters");
    }
    if email.len() > 254 {
        return fail("must be at most 254 characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return fail("must be an email address like name@example.com");
    };
    if local.is_empty() || local.len() > 64 {
        return fail("must have 1 to 64 characters before the @");
    }
    const FORBIDDEN: &[char] = &['"', '(', ')', ',', ':', ';', '<', '>', '@', '[', '\\', ']'];
    if local
        .chars()
        .any(|c| c.is_ascii_control() || c == ' ' || FORBIDDEN.contains(&c))
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return fail("has characters that are not allowed before the @");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if labels.len() < 2 || !labels.iter().all(valid_label) {
        return fail("must have a domain like example.com after the @");
    }
    Ok(email)
}

/// Checks a new password against the rules.
pub fn new_password(field: &str, password: &str) -> Result<(), Problem> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(Problem::field(
            field,
            format!("must be at least {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(Problem::field(
            field,
            format!("must be at most {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    if password.trim().is_empty() {
        return Err(Problem::field(field, "must not be only spaces"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email("email", " Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        assert!(email("email", "a.b+tag@sub.example.org").is_ok());
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@exa mple.com",
            "a b@example.com",
            "ada@@example.com",
            "ada@-example.com",
            "ada@example..com",
            ".ada@example.com",
            "adä@example.com",
            "a<b>@example.com",
        ] {
            let problem = email("email", bad).unwrap_err();
            assert_eq!(problem.field.as_deref(), Some("email"), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(email("email", &long).is_err());
    }

    #[test]
    fn passwords() {
        assert!(new_password("password", "12345678").is_ok());
        assert!(new_password("password", "1234567").is_err());
        assert!(new_password("password", "        ").is_err());
        assert!(new_password("password", &"x".repeat(1024)).is_ok());
        assert!(new_password("password", &"x".repeat(1025)).is_err());
        // Counted in characters, not bytes: eight 2-byte characters pass.
        assert!(new_password("password", "éééééééé").is_ok());
    }
}
