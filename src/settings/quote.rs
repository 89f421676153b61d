//! Writing a value the way the 46xx language reads it back.

/// `SET NAME VALUE`, with the value in ASCII double quotes when it is empty or has white space.
/// Values are validated at write time (no `"`, no line breaks), so quoting cannot fail here.
pub fn set_line(name: &str, value: &str) -> String {
    if value.is_empty() || value.contains(char::is_whitespace) {
        format!("SET {name} \"{value}\"")
    } else {
        format!("SET {name} {value}")
    }
}
