//! `libtavern_hostname.so`: preloaded (`LD_PRELOAD`) into Foundry's
//! container on ECS Fargate, where a task's host name cannot be set and
//! changes with every task. Foundry signs its license for the host name it
//! sees, so this library answers `gethostname` and `uname`'s node name with
//! `TAVERN_HOSTNAME` (Tavern's stable name for the world's license key);
//! without that variable, or with a bad one, it changes nothing.

use std::ffi::{CStr, c_char, c_int};

/// The variable naming the host name to answer.
pub const VARIABLE: &CStr = c"TAVERN_HOSTNAME";

/// The longest host name `uname` can carry (its node name holds 65 bytes
/// with the final NUL), and a DNS label's length.
const MAX: usize = 64;

/// The host name to answer: `TAVERN_HOSTNAME` when it is a host name
/// (letters, digits, `-` and `.`, at most 64 bytes).
fn wanted() -> Option<&'static [u8]> {
    // SAFETY: VARIABLE is a NUL-terminated string; getenv answers null or
    // a NUL-terminated string that lives as long as the environment, which
    // nothing in Foundry's process changes.
    let value = unsafe { libc::getenv(VARIABLE.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv answered a NUL-terminated string (above).
    let name = unsafe { CStr::from_ptr(value) }.to_bytes();
    let ok = !name.is_empty()
        && name.len() <= MAX
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.');
    ok.then_some(name)
}

/// The C library's own `name`, found past this library.
fn next(name: &CStr) -> *mut libc::c_void {
    // SAFETY: RTLD_NEXT with a NUL-terminated symbol name is dlsym's
    // documented use from a preloaded library.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

/// `gethostname(2)`, answering `TAVERN_HOSTNAME` when it is set.
///
/// # Safety
///
/// As the C function's: `name` points to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gethostname(name: *mut c_char, len: libc::size_t) -> c_int {
    let Some(host) = wanted() else {
        let real = next(c"gethostname");
        if real.is_null() {
            return -1;
        }
        // SAFETY: dlsym found the C library's gethostname, whose type this
        // is; the caller's buffer is passed on as it came.
        let real: unsafe extern "C" fn(*mut c_char, libc::size_t) -> c_int =
            unsafe { std::mem::transmute(real) };
        // SAFETY: the caller's contract is the C function's.
        return unsafe { real(name, len) };
    };
    if name.is_null() || len <= host.len() {
        // SAFETY: errno is this thread's own.
        unsafe { *libc::__errno_location() = libc::ENAMETOOLONG };
        return -1;
    }
    // SAFETY: the caller gave `len` writable bytes, more than the name and
    // its NUL (checked above).
    unsafe {
        std::ptr::copy_nonoverlapping(host.as_ptr(), name.cast::<u8>(), host.len());
        *name.add(host.len()) = 0;
    }
    0
}

/// `uname(2)`, with `TAVERN_HOSTNAME` as the node name when it is set.
///
/// # Safety
///
/// As the C function's: `buf` points to a writable `utsname`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uname(buf: *mut libc::utsname) -> c_int {
    let real = next(c"uname");
    if real.is_null() {
        return -1;
    }
    // SAFETY: dlsym found the C library's uname, whose type this is.
    let real: unsafe extern "C" fn(*mut libc::utsname) -> c_int =
        unsafe { std::mem::transmute(real) };
    // SAFETY: the caller's contract is the C function's.
    let answer = unsafe { real(buf) };
    if answer != 0 || buf.is_null() {
        return answer;
    }
    if let Some(host) = wanted() {
        // SAFETY: the C library filled `*buf`; its node name holds 65
        // bytes, more than a wanted name (at most 64) and its NUL.
        unsafe {
            let node = &mut (*buf).nodename;
            node.fill(0);
            std::ptr::copy_nonoverlapping(
                host.as_ptr(),
                node.as_mut_ptr().cast::<u8>(),
                host.len(),
            );
        }
    }
    answer
}
