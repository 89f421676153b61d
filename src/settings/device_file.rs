//! The per-device Avaya file `{mac}.txt`: the device's effective parameters as `SET` lines.

use super::layered::effective;
use super::quote::set_line;
use crate::store::DeviceContext;

/// A rendered file and whether it carries a secret (which decides who may read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub carries_secret: bool,
}

/// Names without a vendor prefix, and `avaya:` names with the prefix removed, are Avaya
/// settings; names prefixed for another vendor (`yealink:…`) are not this file's business.
fn avaya_name(name: &str) -> Option<&str> {
    match name.split_once(':') {
        None => Some(name),
        Some((vendor, rest)) if vendor.eq_ignore_ascii_case("avaya") => Some(rest),
        Some(_) => None,
    }
}

pub fn avaya_device_txt(ctx: &DeviceContext) -> Rendered {
    let mut out = format!("## edgeprov settings for device {}\n", ctx.device.mac);
    let mut carries_secret = false;
    for (name, e) in effective(ctx) {
        let Some(name) = avaya_name(&name) else {
            continue;
        };
        carries_secret |= e.secret;
        out.push_str(&set_line(name, &e.value));
        out.push('\n');
    }
    Rendered {
        bytes: out.into_bytes(),
        carries_secret,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Device, Mac};

    #[test]
    fn secrets_mark_the_file() {
        let mut device = Device::new(Mac::from_octets([0, 1, 2, 3, 4, 5]));
        device
            .params
            .insert("SIPDOMAIN".into(), "example.com".into());
        device
            .params
            .insert("yealink:account.1.label".into(), "x".into());
        let mut ctx = DeviceContext {
            device,
            site: None,
            layers: vec![],
        };
        let plain = avaya_device_txt(&ctx);
        assert!(!plain.carries_secret);
        assert_eq!(
            String::from_utf8(plain.bytes).unwrap(),
            "## edgeprov settings for device 000102030405\nSET SIPDOMAIN example.com\n"
        );
        ctx.device
            .secrets
            .insert("avaya:ADMIN_PASSWORD".into(), "1234 5".into());
        let secret = avaya_device_txt(&ctx);
        assert!(secret.carries_secret);
        assert!(
            String::from_utf8(secret.bytes)
                .unwrap()
                .contains("SET ADMIN_PASSWORD \"1234 5\"\n")
        );
    }
}
