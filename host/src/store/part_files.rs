//! The part files of one offer, of which only a few are open at a time.
//!
//! An offer may list 100,000 files; a process may open perhaps 1,024. A part file is opened (with
//! its folder: two handles) by its first write and closed when it is finished or when more than
//! [`MAX_OPEN_PARTS`] are open (the one written to longest ago: it is opened again, its way walked
//! again and the file checked to be the same, if more bytes come for it). The peer protocol sends
//! files one after the other, so in practice one is open.

use super::PartFile;

/// Part files open at once, at most.
pub const MAX_OPEN_PARTS: usize = 4;

/// The part files of an offer, in the offer's order.
#[derive(Debug, Default)]
pub struct PartFiles {
    parts: Vec<Option<PartFile>>,
    /// Files that may be open, the one written to last at the end.
    recent: Vec<usize>,
}

impl PartFiles {
    /// No files yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next file of the offer.
    pub fn push(&mut self, part: PartFile) {
        self.parts.push(Some(part));
    }

    /// File `file`, to write to: `None` if there is no such file or it was taken. Makes room for
    /// it to be opened, closing the file written to longest ago if [`MAX_OPEN_PARTS`] may be open.
    pub fn get_mut(&mut self, file: usize) -> Option<&mut PartFile> {
        if self.recent.last() != Some(&file) {
            self.parts.get(file)?.as_ref()?;
            self.recent.retain(|&open| open != file);
            while self.recent.len() >= MAX_OPEN_PARTS {
                let oldest = self.recent.remove(0);
                if let Some(Some(part)) = self.parts.get_mut(oldest) {
                    part.close();
                }
            }
            self.recent.push(file);
        }
        self.parts.get_mut(file)?.as_mut()
    }

    /// Takes file `file` out, to finish it; `None` if there is no such file or it was taken.
    pub fn take(&mut self, file: usize) -> Option<PartFile> {
        self.recent.retain(|&open| open != file);
        self.parts.get_mut(file)?.take()
    }

    /// How many part files are open now.
    pub fn open_count(&self) -> usize {
        self.parts.iter().flatten().filter(|p| p.is_open()).count()
    }
}
