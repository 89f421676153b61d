//! Network namespaces a test creates for itself (`ip netns`, veth pairs) and removes however it
//! ends: the only places besides loopback that tests send traffic to.

use std::process::{Child, Command, Stdio};

/// A test's namespaces, each named `{prefix}{role}`; dropping it kills the processes started
/// in them (`children`) and then deletes every role's namespace.
pub struct Lab {
    /// Unique to the test run (`std::process::id()`), so parallel runs cannot meet.
    pub prefix: String,
    pub roles: &'static [&'static str],
    pub children: Vec<Child>,
}

impl Lab {
    pub fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    /// Runs `ip` with `args`; a failure fails the test, naming the command.
    pub fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A command to run inside `role`'s namespace.
    pub fn exec(&self, role: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(role)]).args(args);
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for role in self.roles {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(role)])
                .status();
        }
    }
}

/// Why namespaces cannot be made here (not root, no `ip netns`), if they cannot.
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces need it)".into());
    }
    let ip = Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !ip.is_ok_and(|s| s.success()) {
        return Some("`ip netns` (iproute2) is missing".into());
    }
    None
}
