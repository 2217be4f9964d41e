//! Reading and writing the guest's linear memory, and handing data to the
//! guest in exact-size allocations from `proxy_on_memory_allocate`.

use crate::abi::Status;
use crate::link::{Ctx, R};
use crate::state::Phase;

/// A guest pointer or size (an unsigned 32-bit number) as an index.
pub(crate) fn at(ptr: i32) -> usize {
    ptr as u32 as usize
}

/// `len` bytes at `ptr`; `None` when out of bounds.
pub(crate) fn read(caller: &Ctx<'_>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = caller.data().memory?;
    let start = at(ptr);
    memory
        .data(caller)
        .get(start..start.checked_add(at(len))?)
        .map(<[u8]>::to_vec)
}

/// [`read`] as text (invalid UTF-8 replaced).
pub(crate) fn read_text(caller: &Ctx<'_>, ptr: i32, len: i32) -> Option<String> {
    read(caller, ptr, len).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Copies `bytes` to `ptr`; false when out of bounds.
pub(crate) fn write(caller: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> bool {
    let Some(memory) = caller.data().memory else {
        return false;
    };
    let start = at(ptr);
    let Some(end) = start.checked_add(bytes.len()) else {
        return false;
    };
    match memory.data_mut(&mut *caller).get_mut(start..end) {
        Some(slot) => {
            slot.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

pub(crate) fn write_u32(caller: &mut Ctx<'_>, ptr: i32, value: u32) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

pub(crate) fn write_u64(caller: &mut Ctx<'_>, ptr: i32, value: u64) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

/// Stores a little-endian u32 out-parameter: `Ok`, or
/// `InvalidMemoryAccess` when `ptr` is out of bounds.
pub(crate) fn out_u32(caller: &mut Ctx<'_>, ptr: i32, value: u32) -> Status {
    written(write_u32(caller, ptr, value))
}

/// Stores a little-endian u64 out-parameter, as [`out_u32`].
pub(crate) fn out_u64(caller: &mut Ctx<'_>, ptr: i32, value: u64) -> Status {
    written(write_u64(caller, ptr, value))
}

fn written(ok: bool) -> Status {
    if ok {
        Status::Ok
    } else {
        Status::InvalidMemoryAccess
    }
}

/// Asks the guest for exactly `size` bytes (`proxy_on_memory_allocate`),
/// with the hostcalls Envoy allows there.
fn allocate(caller: &mut Ctx<'_>, size: usize) -> R<u32> {
    let Some(allocate) = caller.data().allocate.clone() else {
        return Ok(0);
    };
    let size = i32::try_from(size)?;
    let phase = caller.data().phase;
    caller.data_mut().phase = Phase::Allocating;
    let result = allocate.call(&mut *caller, size);
    caller.data_mut().phase = phase;
    Ok(result? as u32)
}

/// Returns data to the guest: allocate exactly its size, copy, store the
/// pointer and the size at `ptr_ptr` and `size_ptr`. Empty data is
/// returned as a null pointer and size 0, without an allocation.
pub(crate) fn copy_out(
    caller: &mut Ctx<'_>,
    bytes: &[u8],
    ptr_ptr: i32,
    size_ptr: i32,
) -> R<Status> {
    let mut ptr = 0;
    if !bytes.is_empty() {
        ptr = allocate(caller, bytes.len())?;
        if ptr == 0 || !write(caller, ptr as i32, bytes) {
            return Ok(Status::InvalidMemoryAccess);
        }
    }
    let size = u32::try_from(bytes.len())?;
    if !write_u32(caller, ptr_ptr, ptr) || !write_u32(caller, size_ptr, size) {
        return Ok(Status::InvalidMemoryAccess);
    }
    Ok(Status::Ok)
}
