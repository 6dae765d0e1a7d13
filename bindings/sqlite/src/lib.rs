//! honker as a SQLite loadable extension: every honker operation as a SQL
//! function on the host's own connection, calling the same `honker-core`
//! functions as the Rust, Python and Node packages (same tables, same
//! migrations, same rules). See README.md for every function.

use rusqlite::{ffi, Connection};
use std::os::raw::{c_char, c_int};

/// Oldest host SQLite this extension loads into (RETURNING needs 3.35.0).
pub const MIN_SQLITE_VERSION: c_int = 3_035_000;

/// Entry point; SQLite derives its name from the file name `libhonker_ext`.
///
/// # Safety
/// Called by SQLite's extension loader with valid pointers.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_honkerext_init(
    db: *mut ffi::sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *mut ffi::sqlite3_api_routines,
) -> c_int {
    if p_api.is_null() {
        return ffi::SQLITE_ERROR;
    }
    // Check the host before rusqlite binds its API table: an old host must
    // get an error, never an abort.
    let version = match (*p_api).libversion_number {
        Some(f) => f(),
        None => 0,
    };
    if version < MIN_SQLITE_VERSION {
        let msg = format!(
            "the honker extension needs SQLite 3.35.0 or newer; this host runs {}.{}.{}",
            version / 1_000_000,
            version / 1000 % 1000,
            version % 1000
        );
        if !pz_err_msg.is_null() {
            if let Some(malloc) = (*p_api).malloc {
                let p = malloc(msg.len() as c_int + 1) as *mut u8;
                if !p.is_null() {
                    std::ptr::copy_nonoverlapping(msg.as_ptr(), p, msg.len());
                    *p.add(msg.len()) = 0;
                    *pz_err_msg = p as *mut c_char;
                }
            }
        }
        return ffi::SQLITE_ERROR;
    }
    Connection::extension_init2(db, pz_err_msg, p_api, register)
}

fn register(db: Connection) -> rusqlite::Result<bool> {
    honker_core::store::sqlite::functions::register(
        &db,
        honker_core::store::sqlite::functions::Callers::TrustedSchema,
    )?;
    Ok(false) // not persistent: registered per connection that loads it
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::os::raw::c_void;

    unsafe extern "C" fn old_version() -> c_int {
        3_031_001
    }

    unsafe extern "C" fn test_malloc(n: c_int) -> *mut c_void {
        let v = vec![0u8; n as usize].leak();
        v.as_mut_ptr() as *mut c_void
    }

    #[test]
    fn an_old_host_gets_an_error_not_an_abort() {
        // SAFETY: a zeroed table is all `None`; we fill in what the check uses.
        let mut api: ffi::sqlite3_api_routines = unsafe { std::mem::zeroed() };
        api.libversion_number = Some(old_version);
        api.malloc = Some(test_malloc);
        let mut msg: *mut c_char = std::ptr::null_mut();
        let rc = unsafe { sqlite3_honkerext_init(std::ptr::null_mut(), &mut msg, &mut api) };
        assert_eq!(rc, ffi::SQLITE_ERROR);
        let text = unsafe { CStr::from_ptr(msg) }.to_str().unwrap();
        assert_eq!(
            text,
            "the honker extension needs SQLite 3.35.0 or newer; this host runs 3.31.1"
        );
    }

    #[test]
    fn a_null_api_table_is_an_error() {
        let rc = unsafe {
            sqlite3_honkerext_init(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, ffi::SQLITE_ERROR);
    }
}
