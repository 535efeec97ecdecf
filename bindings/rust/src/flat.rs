//! The flat layout (`descent_optimizer_flat_offset` / `_flat_size`) and 64-byte aligned buffers
//! in it, for [`Optimizer::update_flat`](crate::Optimizer::update_flat).

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::{sys, Float};

/// Where one parameter lives in a flat buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlatEntry {
    /// Byte offset from the start of the buffer (a multiple of [`sys::DESCENT_FLAT_ALIGNMENT`]).
    pub offset: usize,
    /// The parameter's dtype (`sys::DESCENT_FLOAT32`, `FLOAT64`, `BFLOAT16` or `FLOAT16`).
    pub dtype: u32,
    /// The parameter's number of elements.
    pub numel: usize,
}

/// The flat layout of an optimizer's declared parameters, in declaration order, as the library
/// computes it. Obtained from [`Optimizer::flat_layout`](crate::Optimizer::flat_layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatLayout {
    pub(crate) entries: Vec<FlatEntry>,
    pub(crate) size: usize,
}

impl FlatLayout {
    /// The entries, one per declared parameter, indexed like the parameters.
    pub fn entries(&self) -> &[FlatEntry] {
        &self.entries
    }

    /// Total size in bytes (a multiple of [`sys::DESCENT_FLAT_ALIGNMENT`]).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Number of parameters in the layout.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the layout holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A zero-initialised buffer of [`FlatLayout::size`] bytes aligned to 64 bytes, with typed
/// views of each parameter. Padding between parameters is never read or written by the library.
pub struct FlatBuffer {
    ptr: NonNull<u8>,
    alloc: Layout,
    layout: FlatLayout,
}

// SAFETY: FlatBuffer owns plain memory with no interior mutability; &self only reads.
unsafe impl Send for FlatBuffer {}
// SAFETY: as above.
unsafe impl Sync for FlatBuffer {}

impl FlatBuffer {
    /// Allocates a zeroed buffer for `layout`.
    pub fn new(layout: &FlatLayout) -> Self {
        let alloc = Layout::from_size_align(layout.size.max(sys::DESCENT_FLAT_ALIGNMENT), sys::DESCENT_FLAT_ALIGNMENT)
            .expect("flat layout size overflows");
        // SAFETY: alloc has a non-zero size.
        let raw = unsafe { alloc_zeroed(alloc) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(alloc));
        FlatBuffer { ptr, alloc, layout: layout.clone() }
    }

    /// The layout this buffer was made for.
    pub fn layout(&self) -> &FlatLayout {
        &self.layout
    }

    fn entry<T: Float>(&self, index: usize) -> Result<FlatEntry> {
        let e = *self.layout.entries.get(index).ok_or_else(|| {
            Error::new(
                sys::DESCENT_ERR_INVALID_ARGUMENT,
                format!("parameter index {index} out of range (the layout has {})", self.layout.len()),
            )
        })?;
        if e.dtype != T::DTYPE {
            return Err(Error::new(
                sys::DESCENT_ERR_DTYPE_MISMATCH,
                format!(
                    "parameter {index}: view as {} asked, declared {}",
                    crate::dtype_name(T::DTYPE),
                    crate::dtype_name(e.dtype)
                ),
            ));
        }
        let end = e.numel.checked_mul(std::mem::size_of::<T>()).and_then(|b| b.checked_add(e.offset));
        if end.map_or(true, |end| end > self.layout.size) {
            return Err(Error::new(sys::DESCENT_ERR_INTERNAL, format!("parameter {index} lies outside the flat layout")));
        }
        Ok(e)
    }

    /// Parameter `index` as a slice of `T` (its declared dtype).
    pub fn view<T: Float>(&self, index: usize) -> Result<&[T]> {
        let e = self.entry::<T>(index)?;
        // SAFETY: in bounds (checked), aligned (offsets are multiples of 64), initialised (zeroed).
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(e.offset).cast::<T>(), e.numel) })
    }

    /// Parameter `index` as a mutable slice of `T` (its declared dtype).
    pub fn view_mut<T: Float>(&mut self, index: usize) -> Result<&mut [T]> {
        let e = self.entry::<T>(index)?;
        // SAFETY: as in view; &mut self makes it exclusive.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(e.offset).cast::<T>(), e.numel) })
    }

    /// The whole buffer as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: the allocation holds at least layout.size initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size) }
    }

    /// The whole buffer as mutable bytes.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in as_bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size) }
    }

    /// MLX's `clip_grad_norm` over every parameter of this buffer (a gradient buffer), in place;
    /// returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        let base = self.ptr.as_ptr();
        let dtypes: Vec<u32> = self.layout.entries.iter().map(|e| e.dtype).collect();
        let numels: Vec<i64> = self.layout.entries.iter().map(|e| e.numel as i64).collect();
        // SAFETY: offsets lie inside the allocation.
        let ptrs: Vec<*mut std::ffi::c_void> =
            self.layout.entries.iter().map(|e| unsafe { base.add(e.offset).cast() }).collect();
        crate::clip_raw(&dtypes, &numels, &ptrs, max_norm)
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
}

impl Clone for FlatBuffer {
    fn clone(&self) -> Self {
        let mut copy = FlatBuffer::new(&self.layout);
        copy.as_bytes_mut().copy_from_slice(self.as_bytes());
        copy
    }
}

impl Drop for FlatBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in new with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.alloc) }
    }
}

impl std::fmt::Debug for FlatBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatBuffer").field("layout", &self.layout).finish()
    }
}
