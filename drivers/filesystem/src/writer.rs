//! The resumable writer: bytes go straight to the final file; `Writer(path, true)` resumes at
//! its end, in this process or another.

use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use regstore_sdk::{Error, FileWriter, Result, WriterState};

use crate::raw::{self, Root};
use crate::{full_path, io_error, prune, with_parents};

pub struct Writer {
    file: Option<raw::File>,
    root: PathBuf,
    files: Rc<Root>,
    full: PathBuf,
    path: String,
    size: u64,
    state: WriterState,
}

impl Writer {
    pub fn open(root: &Path, files: &Rc<Root>, path: &str, append: bool) -> Result<Self> {
        let full = full_path(root, path);
        if full.is_dir() {
            return Err(Error::other(format!("{path}: is a directory")));
        }
        let file = if append {
            // Resuming what was never written is path-not-found (upstream created an empty file).
            files.open_for_write(path, true)
        } else {
            with_parents(&full, || files.open_for_write(path, false))
        }
        .map_err(|e| io_error("opening", path, e))?;
        let size = raw::size(&file).map_err(|e| io_error("opening", path, e))?;
        Ok(Writer {
            file: Some(file),
            root: root.to_path_buf(),
            files: Rc::clone(files),
            full,
            path: path.to_string(),
            size,
            state: WriterState::Open,
        })
    }

    fn sync(&mut self) -> Result<()> {
        match &self.file {
            Some(f) => raw::sync(f).map_err(|e| io_error("syncing", &self.path, e)),
            None => Ok(()),
        }
    }
}

impl FileWriter for Writer {
    fn write(&mut self, data: Vec<u8>) -> Result<u64> {
        self.state.check_write()?;
        let file = self.file.as_ref().ok_or_else(|| Error::other("already closed"))?;
        raw::write_all_at(file, &data, self.size).map_err(|e| io_error("writing", &self.path, e))?;
        self.size += data.len() as u64;
        Ok(data.len() as u64)
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn close(&mut self) -> Result<()> {
        if self.state.check_close()? {
            self.sync()?;
            self.state = WriterState::Closed;
        }
        self.file = None;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.state.check_commit()?;
        self.sync()?;
        self.state = WriterState::Committed;
        Ok(())
    }

    fn cancel(&mut self) -> Result<()> {
        self.state.check_cancel()?;
        self.file = None;
        self.state = WriterState::Cancelled;
        match fs::remove_file(&self.full) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error("cancelling", &self.path, e)),
            _ => {}
        }
        prune(&self.root, &self.files, &self.path);
        Ok(())
    }
}
