//! Instance ids chosen by the caller (实例编号): a safe alphabet, so an id can be put in a URL
//! path, a file name, a log line and a CSV cell as it is, and can never read as `..` or hide a
//! control or direction-changing character.
//!
//! The rule: 1 to 64 characters; letters (Chinese included) and digits, and `-`, `_`, `.`
//! between them; the first character a letter or a digit.

use super::problem::ApiError;

/// The longest id, in characters.
pub const MAX_ID_CHARS: usize = 64;

/// The rule, in the words a 422 answer gives.
pub const ID_RULE: &str =
    "an instance id has 1 to 64 characters: letters (Chinese included) and digits, and `-`, `_` or `.` after the first";

fn letter_or_digit(c: char) -> bool {
    // `is_alphabetic` covers CJK ideographs and letters of every script; digits are ASCII only
    // (no full-width or superscript look-alikes).
    c.is_ascii_digit() || c.is_alphabetic()
}

/// The reason `id` breaks the rule, if it does.
pub fn problem(id: &str) -> Option<String> {
    let n = id.chars().count();
    if n == 0 {
        return Some("it is empty".into());
    }
    if n > MAX_ID_CHARS {
        return Some(format!("it has {n} characters"));
    }
    if let Some(first) = id.chars().next().filter(|c| !letter_or_digit(*c)) {
        return Some(format!("it starts with `{}`", first.escape_debug()));
    }
    id.chars()
        .find(|c| !(letter_or_digit(*c) || matches!(c, '-' | '_' | '.')))
        .map(|c| format!("it contains `{}`", c.escape_debug()))
}

/// The id as given, or a 422 with the rule and what breaks it.
pub fn check(id: &str) -> Result<String, ApiError> {
    match problem(id) {
        None => Ok(id.to_string()),
        Some(why) => Err(ApiError::invalid(format!("{ID_RULE}; {why}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::problem;

    #[test]
    fn ids_of_letters_digits_and_separators_are_taken() {
        for id in ["i-1", "2026.社区.甲", "选举_2012-甲社区", "A", "x".repeat(64).as_str(), "街".repeat(64).as_str()]
        {
            assert_eq!(problem(id), None, "{id}");
        }
    }

    #[test]
    fn other_ids_are_refused_with_the_reason() {
        let cases = [
            ("", "it is empty"),
            ("..", "it starts with `.`"),
            ("-x", "it starts with `-`"),
            ("a/b", "it contains `/`"),
            ("a b", "it contains ` `"),
            ("a%2F", "it contains `%`"),
            ("a\u{202e}b", "it contains `\\u{202e}`"),
            ("a\nb", "it contains `\\n`"),
            ("１２", "it starts with `１`"),
        ];
        for (id, why) in cases {
            assert_eq!(problem(id).as_deref(), Some(why), "{id:?}");
        }
        assert_eq!(problem(&"街".repeat(65)).as_deref(), Some("it has 65 characters"));
    }
}
