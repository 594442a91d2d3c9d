//! This host's identity: the name under which it takes a sync target's lock, keeps its
//! per-host snapshots (`hosts/HOST/` in a target) and writes a target's marker.
//!
//! A hostname alone does not tell hosts apart: clones of one VM image, containers of one
//! image and two laptops called `macbook` share theirs, and a lock judged by hostname alone
//! lets them take over each other's live locks (a pid means nothing on another machine). So
//! the identity is the hostname plus a machine id, rendered `HOSTNAME-<12 hex digits>`:
//! readable, and safe as a folder name.
//!
//! Where it comes from, first that answers:
//! 1. `METASYSTEM_HOST_ID` in the environment (several daemons on one machine acting as
//!    different hosts: tests, containers sharing a machine id);
//! 2. `[daemon] host_id` in the config (read by the daemon's config reader);
//! 3. the hostname and the machine's id: `/etc/machine-id`, else `/var/lib/dbus/machine-id`
//!    (Linux, the BSDs with dbus), else the IOPlatformUUID (`ioreg -rd1 -c
//!    IOPlatformExpertDevice`) on macOS;
//! 4. the hostname and a random id kept in the state dir's `host-id` file, made on first use
//!    (a container without a machine id: the id lives as long as its state dir).
//!
//! The machine id itself is never written anywhere: as machine-id(5) asks, the 12 digits are
//! of a keyed hash of it (HMAC-SHA256 with this tool's own key), so a target shared with
//! others does not expose it. Clones of one image that kept the image's machine id (the
//! systemd documentation says to empty it in images) and share a hostname still collide:
//! give them `METASYSTEM_HOST_ID` or regenerate the id (`systemd-machine-id-setup`).

use std::path::Path;
use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};

/// The environment variable that overrides the identity.
pub const ENV: &str = "METASYSTEM_HOST_ID";
/// The file in the state dir holding the random id of a machine that has no machine id.
pub const ID_FILE: &str = "host-id";
/// The longest identity accepted.
pub const MAX_LEN: usize = 100;
/// The key of the hash applied to the machine id (an application-specific key, as
/// machine-id(5) asks).
const KEY: &[u8] = b"metasystem host identity v1";
/// Hex digits of the hashed machine id in an identity.
const DIGITS: usize = 12;
/// The longest hostname kept in a derived identity.
const MAX_HOSTNAME: usize = 63;

/// Checks an identity given by the operator: 1 to [`MAX_LEN`] letters, digits, `.`, `_` and
/// `-`, starting with a letter or a digit (it names a folder in a target and is a field of
/// the lock file). The error says what is wrong, without the key's name.
pub fn validate(id: &str) -> Result<(), String> {
    const RULE: &str = "a host id is 1 to 100 letters, digits, '.', '_' and '-', starting with a \
                        letter or a digit (it names a folder in each sync target)";
    if id.is_empty() {
        return Err(format!("it is empty: {RULE}"));
    }
    if id.len() > MAX_LEN {
        return Err(format!("it is {} bytes long: {RULE}", id.len()));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("it holds {c:?}: {RULE}"));
    }
    match id.chars().next() {
        Some(c) if !c.is_ascii_alphanumeric() => Err(format!("it starts with {c:?}: {RULE}")),
        _ => Ok(()),
    }
}

/// This machine's hostname (`uname -n`), or `localhost` when it has none.
pub fn hostname() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// This host's identity (see the module's doc for the order): `configured` is `[daemon]
/// host_id` (already checked by the config reader), `state_dir` where a machine without a
/// machine id keeps its random one (the folder is made, private, if it is not there). The
/// error says what to do.
pub fn resolve(configured: Option<&str>, state_dir: &Path) -> Result<String, String> {
    if let Some(id) = from_env()? {
        return Ok(id);
    }
    if let Some(id) = configured {
        validate(id).map_err(|e| format!("[daemon] host_id {id:?}: {e}"))?;
        return Ok(id.to_string());
    }
    let name = hostname();
    if let Some(id) = machine_id() {
        return Ok(derive(&name, id));
    }
    let id = persisted(state_dir)?;
    Ok(derive(&name, id.as_bytes()))
}

/// `METASYSTEM_HOST_ID`, checked; `None` when it is not set (or empty).
pub fn from_env() -> Result<Option<String>, String> {
    match std::env::var(ENV) {
        Ok(id) if id.is_empty() => Ok(None),
        Ok(id) => match validate(&id) {
            Ok(()) => Ok(Some(id)),
            Err(e) => Err(format!("{ENV}={id:?}: {e}")),
        },
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => Err(format!(
            "{ENV}={raw:?}: not UTF-8: a host id is 1 to 100 letters, digits, '.', '_' and '-'"
        )),
    }
}

/// `HOSTNAME-<12 hex digits of the keyed hash of id>`, the hostname made folder-safe.
pub fn derive(hostname: &str, id: &[u8]) -> String {
    let mut name: String = hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    name.truncate(MAX_HOSTNAME);
    if name.is_empty() {
        name = "host".into();
    }
    let mac = hmac_sha256(KEY, id);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}-{}", &hex[..DIGITS])
}

/// The machine's id (read once per process), if it has one.
fn machine_id() -> Option<&'static [u8]> {
    static ID: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    ID.get_or_init(read_machine_id).as_deref()
}

fn read_machine_id() -> Option<Vec<u8>> {
    for file in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Some(id) = std::fs::read_to_string(file).ok().and_then(|t| hex_id(&t)) {
            return Some(id);
        }
    }
    platform_uuid()
}

/// A machine id as written in those files: 32 hex digits (dashes of a UUID ignored), not all
/// zeros; `None` for an empty or "uninitialized" file (an image not booted yet).
fn hex_id(text: &str) -> Option<Vec<u8>> {
    let digits: String = text
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let ok = digits.len() == 32
        && digits.chars().all(|c| c.is_ascii_hexdigit())
        && digits.chars().any(|c| c != '0');
    ok.then(|| digits.into_bytes())
}

/// macOS: the hardware UUID from `ioreg` (a subprocess, run once per process).
#[cfg(target_os = "macos")]
fn platform_uuid() -> Option<Vec<u8>> {
    let out = std::process::Command::new("/usr/sbin/ioreg")
        .args(["-rd1", "-c", "IOPlatformExpertDevice"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("\"IOPlatformUUID\""))?;
    // `"IOPlatformUUID" = "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX"`
    let value = line.rsplit('"').nth(1)?;
    hex_id(value)
}

#[cfg(not(target_os = "macos"))]
fn platform_uuid() -> Option<Vec<u8>> {
    None
}

/// The random id kept in `state_dir`'s [`ID_FILE`], made on first use: written to a temp
/// name, made durable, and linked in place only if no other process made one meanwhile
/// (then that one is used).
fn persisted(state_dir: &Path) -> Result<String, String> {
    let file = state_dir.join(ID_FILE);
    let help = format!("set [daemon] host_id or {ENV} to name this host");
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            return hex_id(&text).map(|_| text.trim().to_string()).ok_or_else(|| {
                format!(
                    "{} does not hold a host id (32 hex digits): remove it to make a new one, or {help}",
                    file.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}; {help}", file.display())),
    }
    let fail = |e: std::io::Error| {
        format!(
            "this machine has no machine id and its own cannot be kept in {}: {e}; {help}",
            file.display()
        )
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(fail)?;
    }
    let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let tmp = state_dir.join(format!(".{ID_FILE}.{}.tmp", std::process::id()));
    let made = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{id}\n").as_bytes())?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, &file) {
            Ok(()) => std::fs::File::open(state_dir)?.sync_all(),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    made.map_err(fail)?;
    // Ours, or the one another process linked first.
    let text = std::fs::read_to_string(&file).map_err(fail)?;
    hex_id(&text)
        .map(|_| text.trim().to_string())
        .ok_or_else(|| format!("{} does not hold a host id; {help}", file.display()))
}

/// HMAC-SHA256 (RFC 2104), for the one keyed hash above.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let (mut inner, mut outer) = (Sha256::new(), Sha256::new());
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than a block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_derived_id_is_the_hostname_and_a_hash_safe_as_a_folder_name() {
        let a = derive("box", b"3d1219c7c4c5404aaa1f6d2a48adfda4");
        let b = derive("box", b"00000000000000000000000000000001");
        assert!(
            a.starts_with("box-") && a.len() == "box-".len() + DIGITS,
            "{a}"
        );
        assert_ne!(a, b, "same hostname, different machines");
        assert_eq!(a, derive("box", b"3d1219c7c4c5404aaa1f6d2a48adfda4"));
        // The machine id itself is not in it.
        assert!(!a.contains("3d1219c7c4c5"), "{a}");
        for (host, want) in [
            ("Johns MacBook/Pro", "Johns-MacBook-Pro-"),
            ("..hidden", "hidden-"),
            ("", "host-"),
            ("~", "host-"),
        ] {
            let id = derive(host, b"x");
            assert!(id.starts_with(want), "{host:?} -> {id}");
            assert_eq!(validate(&id), Ok(()), "{id}");
        }
        let long = derive(&"h".repeat(300), b"x");
        assert_eq!(validate(&long), Ok(()), "{long}");
    }

    #[test]
    fn ids_are_checked() {
        for ok in ["box-3d1219c7c4c5", "a", "node_1.example.org", "A-b"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("", "empty"),
            ("has space", "' '"),
            ("a/b", "'/'"),
            ("..", "starts with"),
            ("-x", "starts with"),
            ("é", "'é'"),
        ] {
            let e = validate(bad).err().unwrap_or_default();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        assert!(validate(&"x".repeat(MAX_LEN + 1)).is_err());
        assert_eq!(validate(&"x".repeat(MAX_LEN)), Ok(()));
    }

    #[test]
    fn machine_ids_are_read_as_hex() {
        assert!(hex_id("3d1219c7c4c5404aaa1f6d2a48adfda4\n").is_some());
        assert!(hex_id("3D1219C7-C4C5-404A-AA1F-6D2A48ADFDA4").is_some());
        for bad in [
            "",
            "uninitialized\n",
            "00000000000000000000000000000000",
            "xyz",
        ] {
            assert!(hex_id(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn without_a_machine_id_a_random_one_is_kept_in_the_state_dir() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        let a = persisted(&state).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(persisted(&state).unwrap(), a, "kept, not made again");
        let leftovers: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|n| n != ID_FILE)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::write(state.join(ID_FILE), "garbage\n").unwrap();
        let e = persisted(&state).err().unwrap();
        assert!(e.contains("does not hold a host id"), "{e}");
    }

    #[test]
    fn this_machine_has_an_identity() {
        let d = tempfile::tempdir().unwrap();
        // METASYSTEM_HOST_ID may be set around the tests: either way, a valid id.
        let id = resolve(None, d.path()).unwrap();
        assert_eq!(validate(&id), Ok(()), "{id}");
        if std::env::var_os(ENV).is_none() {
            assert_eq!(resolve(Some("given-1"), d.path()).unwrap(), "given-1");
            assert!(resolve(Some("bad id"), d.path()).is_err());
        }
    }
}
