//! The few libc calls the harness needs, each behind a small safe wrapper so that `unsafe` stays
//! in this one file.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// A POSIX signal number.
pub(crate) type Signal = libc::c_int;

pub(crate) const SIGINT: Signal = libc::SIGINT;
pub(crate) const SIGQUIT: Signal = libc::SIGQUIT;

/// Whether this process runs with effective uid 0 (PostgreSQL refuses to run as root).
#[expect(unsafe_code, reason = "geteuid has no preconditions and cannot fail")]
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, touches no memory and always succeeds.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid of an OS user, or `None` if there is no such user.
#[expect(
    unsafe_code,
    reason = "getpwnam_r fills a caller-provided passwd struct and buffer"
)]
pub(crate) fn lookup_user(name: &str) -> io::Result<Option<(u32, u32)>> {
    let c_name = CString::new(name).map_err(io::Error::other)?;
    // getpwnam_r rather than getpwnam: the latter returns a pointer into static storage, which
    // is a data race when tests on other threads look users up too.
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    loop {
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer points to live, writable memory of the stated size; the string
        // pointers the call stores into `pwd` point into `buf`, which we do not read.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                pwd.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &raw mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1024 * 1024 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: a zero return with a non-null result means `pwd` was initialised.
        let pwd = unsafe { pwd.assume_init() };
        return Ok(Some((pwd.pw_uid, pwd.pw_gid)));
    }
}

/// Sends `signal` to process `pid`.
#[expect(
    unsafe_code,
    reason = "kill(2) with a checked pid has no memory-safety preconditions"
)]
pub(crate) fn send_signal(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // pid 0 and negative pids address process groups; never do that by accident.
    if pid <= 0 {
        return Err(io::Error::other("refusing to signal a process group"));
    }
    // SAFETY: kill takes plain integers and does not touch our memory.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a process with this pid exists (possibly owned by another user, or a zombie).
pub(crate) fn pid_alive(pid: u32) -> bool {
    match send_signal(pid, 0) {
        Ok(()) => true,
        // Only "no such process" means dead; EPERM means it exists but belongs to someone else.
        Err(e) => e.raw_os_error() != Some(libc::ESRCH),
    }
}

/// Whether any process is attached to a System V shared-memory segment, or `None` if the
/// segment no longer exists.
#[expect(
    unsafe_code,
    reason = "shmctl(IPC_STAT) fills a caller-provided shmid_ds"
)]
pub(crate) fn shm_in_use(shmid: i32) -> io::Result<Option<bool>> {
    let mut ds = MaybeUninit::<libc::shmid_ds>::uninit();
    // SAFETY: `ds` is writable memory of the right type for IPC_STAT.
    let rc = unsafe { libc::shmctl(shmid, libc::IPC_STAT, ds.as_mut_ptr()) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EINVAL | libc::EIDRM) => Ok(None),
            _ => Err(err),
        };
    }
    // SAFETY: IPC_STAT succeeded, so the kernel initialised `ds`.
    let ds = unsafe { ds.assume_init() };
    Ok(Some(ds.shm_nattch != 0))
}

/// Makes the child receive `signal` when the thread that spawns it dies.
///
/// Note the *thread*: Linux delivers the parent-death signal when the forking thread exits, so
/// commands given this must be spawned from a thread that lives as long as the process (see
/// `spawner`). std runs `pre_exec` closures after it has applied `uid`/`gid`; that order
/// matters because changing the uid clears the parent-death signal.
#[expect(
    unsafe_code,
    reason = "pre_exec is unsafe; the closure only calls async-signal-safe prctl and getppid"
)]
pub(crate) fn set_parent_death_signal(cmd: &mut Command, signal: Signal) -> io::Result<()> {
    let signal = libc::c_ulong::try_from(signal).map_err(io::Error::other)?;
    let parent = libc::pid_t::try_from(std::process::id()).map_err(io::Error::other)?;
    // SAFETY: the closure runs between fork and exec; it allocates nothing and only calls
    // async-signal-safe functions.
    unsafe {
        cmd.pre_exec(move || {
            // prctl's arguments are unsigned longs; pass them at full width through the varargs.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                signal,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // If we were orphaned between fork and prctl, the signal will never come: give up.
            // (A raw OS error, because allocating between fork and exec is not allowed.)
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    };
    Ok(())
}
