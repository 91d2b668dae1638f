//! The frame buffer the pipeline rewrites in place: an mbuf in the worker,
//! a byte buffer with headroom ([`VecFrame`]) in tests and tools.

/// A frame buffer the pipeline can rewrite in place: an mbuf, or a byte
/// buffer with headroom in tests.
pub trait Frame {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the frame at the front by `len` bytes (mbuf headroom).
    fn prepend(&mut self, len: usize) -> bool;
    /// Removes `len` bytes at the front.
    fn trim_front(&mut self, len: usize) -> bool;
    /// Shortens the frame to `len` bytes.
    fn truncate(&mut self, len: usize);
    /// Sets the frame's length, growing into the tailroom if needed.
    fn resize(&mut self, len: usize) -> bool;
}

/// A frame in a plain byte buffer with headroom in front, as an mbuf has:
/// for tests and tools that drive the pipeline without DPDK.
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
}

impl VecFrame {
    /// DPDK's default mbuf headroom.
    pub const HEADROOM: usize = 128;

    pub fn new(frame: &[u8]) -> VecFrame {
        let mut buf = vec![0u8; Self::HEADROOM + frame.len()];
        buf[Self::HEADROOM..].copy_from_slice(frame);
        VecFrame {
            buf,
            start: Self::HEADROOM,
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.buf[self.start..].to_vec()
    }
}

impl Frame for VecFrame {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
    fn prepend(&mut self, len: usize) -> bool {
        if len > self.start {
            return false;
        }
        self.start -= len;
        true
    }
    fn trim_front(&mut self, len: usize) -> bool {
        if self.start + len > self.buf.len() {
            return false;
        }
        self.start += len;
        true
    }
    fn truncate(&mut self, len: usize) {
        self.buf.truncate(self.start + len);
    }
    fn resize(&mut self, len: usize) -> bool {
        self.buf.resize(self.start + len, 0);
        true
    }
}
