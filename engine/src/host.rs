//! The host's limits as the kernel reports them (for `beast doctor`): the two system calls std
//! has no safe wrapper for.
#![allow(unsafe_code, reason = "getrlimit and statvfs: plain-data system calls")]

use std::path::Path;

/// A resource limit: (soft, hard), `libc::RLIM_INFINITY` for none.
pub fn rlimit(resource: libc::__rlimit_resource_t) -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let got = unsafe { libc::getrlimit(resource, &raw mut limit) };
    (got == 0).then_some((limit.rlim_cur, limit.rlim_max))
}

/// Bytes an unprivileged process may still write on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::other("path holds a NUL byte"))?;
    // SAFETY: statvfs is plain data, for which all zeroes is a valid value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statvfs we own, both live for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &raw mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}
