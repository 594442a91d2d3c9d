//! User and group names to ids, through the C library (so NSS sources such as LDAP count, not
//! only `/etc/passwd`). These may block on a network directory: call them where the config is
//! read (the blocking pool), never on the scheduler.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// A user as the group database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    pub home: PathBuf,
}

/// The buffer the reentrant lookups write strings into; grown on ERANGE up to this.
const MAX_BUFFER: usize = 1 << 20;

/// The user named `name` (or a numeric uid), `Ok(None)` when there is none.
pub fn user(name: &str) -> Result<Option<User>, String> {
    let by_id = name.parse::<u32>().ok();
    let cname = CString::new(name).map_err(|_| "a user name has no NUL byte".to_string())?;
    let mut size = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids); it is only read
        // after getpw*_r filled it, with its strings pointing into `buf`, alive until then.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: the name is NUL-terminated, `pwd` and
        // `found` are live locals, `buf` is `size` bytes long.
        let rc = unsafe {
            match by_id {
                Some(uid) => libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), size, &mut found),
                None => {
                    libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr(), size, &mut found)
                }
            }
        };
        if rc == libc::ERANGE && size < MAX_BUFFER {
            size *= 4;
            continue;
        }
        if rc != 0 {
            return Err(format!(
                "cannot look up user {name:?}: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        if found.is_null() {
            return Ok(None);
        }
        // SAFETY: getpw*_r succeeded: pw_name and pw_dir are NUL-terminated strings in `buf`.
        let (pw_name, home) = unsafe {
            (
                CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned(),
                CStr::from_ptr(pwd.pw_dir).to_string_lossy().into_owned(),
            )
        };
        return Ok(Some(User {
            name: pw_name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: PathBuf::from(home),
        }));
    }
}

/// The gid of the group named `name` (or a numeric gid), `Ok(None)` when there is none.
pub fn group(name: &str) -> Result<Option<u32>, String> {
    let by_id = name.parse::<u32>().ok();
    let cname = CString::new(name).map_err(|_| "a group name has no NUL byte".to_string())?;
    let mut size = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: as in `user`.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `user`.
        let rc = unsafe {
            match by_id {
                Some(gid) => libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), size, &mut found),
                None => {
                    libc::getgrnam_r(cname.as_ptr(), &mut grp, buf.as_mut_ptr(), size, &mut found)
                }
            }
        };
        if rc == libc::ERANGE && size < MAX_BUFFER {
            size *= 4;
            continue;
        }
        if rc != 0 {
            return Err(format!(
                "cannot look up group {name:?}: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        if found.is_null() {
            return Ok(None);
        }
        return Ok(Some(grp.gr_gid));
    }
}

/// The supplementary groups of user `name` whose primary group is `gid` (itself included).
pub fn groups_of(name: &str, gid: u32) -> Vec<u32> {
    let Ok(cname) = CString::new(name) else {
        return vec![gid];
    };
    let mut count: libc::c_int = 64;
    loop {
        let mut list: Vec<libc::gid_t> = vec![0; count.max(1) as usize];
        let mut n = count;
        // SAFETY: `list` holds `n` gids; getgrouplist writes at most `n` and sets `n` to how
        // many there are.
        let rc = unsafe {
            libc::getgrouplist(
                cname.as_ptr(),
                gid as _,
                list.as_mut_ptr() as *mut _,
                &mut n,
            )
        };
        if rc >= 0 {
            list.truncate(n.max(0) as usize);
            #[allow(clippy::unnecessary_cast)] // gid_t is not u32 everywhere
            return list.into_iter().map(|g| g as u32).collect();
        }
        if n <= count || count >= 65_536 {
            return vec![gid];
        }
        count = n;
    }
}

/// Whether this process may switch users (it runs as root).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_known_and_nonsense_is_not() {
        let root = user("root").unwrap().unwrap();
        assert_eq!(root.uid, 0);
        assert_eq!(user("0").unwrap().unwrap().name, "root");
        assert_eq!(user("no-such-user-here-xyz").unwrap(), None);
        assert!(group("root").unwrap().is_some());
        assert_eq!(group("no-such-group-here-xyz").unwrap(), None);
        assert!(groups_of("root", 0).contains(&0));
    }
}
