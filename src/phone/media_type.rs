//! The `Content-Type` a served file goes out with, read from its name as a web server reads it
//! (the types of nginx's `mime.types`, where phones were served from before): an operator's
//! files are XML, images, sounds and certificates as well as settings, and a phone, a browser
//! or a proxy on the way may go by the type.

use crate::settings::render::classify;

/// Settings files (every name edgeprov generates, and the text kinds operators upload) are
/// `text/plain`, as edgeprov always sent them; other known extensions get their type, compared
/// without case (`LOGO.PNG`); anything else is `application/octet-stream`, nginx's default type,
/// which no client renders (Grandstream's encrypted `cfg{mac}` has no extension at all).
/// `.htm` is text too: Snom's settings files use it, and the phone listener serves no web page
/// a browser should run.
pub fn for_name(name: &str) -> &'static str {
    if classify(name).is_some() {
        return "text/plain";
    }
    let Some((_, ext)) = name.rsplit_once('.') else {
        return "application/octet-stream";
    };
    match ext.to_ascii_lowercase().as_str() {
        "txt" | "cfg" | "boot" | "conf" | "ini" | "htm" | "html" | "log" | "csv" => "text/plain",
        "xml" => "text/xml",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "pem" | "crt" | "cer" | "der" => "application/x-x509-ca-cert",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::for_name;

    #[test]
    fn names_give_types() {
        for (name, want) in [
            ("46xxsettings.txt", "text/plain"),
            ("000000000000.cfg", "text/plain"),
            ("001122aabbcc.boot", "text/plain"),
            ("snom710.htm", "text/plain"),
            ("SEP001122AABBCC.cnf.xml", "text/xml"),
            ("Logo.PNG", "image/png"),
            ("ring.wav", "audio/wav"),
            ("av_prca.pem", "application/x-x509-ca-cert"),
            ("cfgc074ad2bd859", "application/octet-stream"),
            ("page.svg", "application/octet-stream"),
            ("trailing.", "application/octet-stream"),
        ] {
            assert_eq!(for_name(name), want, "{name}");
        }
    }
}
