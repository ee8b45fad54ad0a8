//! The write buffer of the resumable writers: bytes accepted by `Write` wait here until a whole
//! chunk can be sent, so every request but the last carries exactly one chunk.

/// Accepted bytes not sent yet, less than one chunk between calls.
#[derive(Debug)]
pub struct ChunkBuffer {
    data: Vec<u8>,
    chunk: usize,
}

impl ChunkBuffer {
    /// A buffer for chunks of `chunk` bytes (at least 1).
    pub fn new(chunk: usize) -> Self {
        ChunkBuffer { data: Vec::new(), chunk: chunk.max(1) }
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// Bytes waiting (D5: a writer's size counts them).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.data
    }

    /// Adds `data`; returns the whole chunks now ready, in order, and keeps the rest. A write of
    /// exactly one chunk into an empty buffer is handed on without a copy.
    pub fn push(&mut self, data: Vec<u8>) -> Vec<Vec<u8>> {
        if self.data.is_empty() && data.len() == self.chunk {
            return vec![data];
        }
        if self.data.is_empty() {
            self.data = data;
        } else {
            self.data.extend_from_slice(&data);
        }
        let mut ready = Vec::new();
        if self.data.len() >= self.chunk {
            let whole = self.data.len() / self.chunk * self.chunk;
            let rest = self.data.split_off(whole);
            let full = std::mem::replace(&mut self.data, rest);
            if whole == self.chunk {
                ready.push(full);
            } else {
                ready.extend(full.chunks(self.chunk).map(<[u8]>::to_vec));
            }
        }
        ready
    }

    /// Everything waiting, leaving the buffer empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// Puts `bytes` back in front of what waits (the unacknowledged end of a chunk).
    pub fn unshift(&mut self, mut bytes: Vec<u8>) {
        bytes.extend_from_slice(&self.data);
        self.data = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_out_whole_and_in_order() {
        let mut b = ChunkBuffer::new(4);
        assert!(b.push(vec![1, 2, 3]).is_empty());
        assert_eq!(
            b.push(vec![4, 5, 6, 7, 8, 9, 10, 11, 12, 13]),
            vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10, 11, 12]]
        );
        assert_eq!(b.len(), 1);
        assert_eq!(b.push(vec![14, 15, 16]), vec![vec![13, 14, 15, 16]]);
        assert!(b.is_empty());
        assert_eq!(b.push(vec![0; 4]), vec![vec![0; 4]]);
        b.push(vec![9]);
        b.unshift(vec![7, 8]);
        assert_eq!(b.take(), vec![7, 8, 9]);
    }
}
