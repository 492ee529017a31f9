//! Where an import's records come from: a staged package's stream, or (direct mode,
//! `staging: {kind: none}`) the source's files themselves. The importer reads records
//! through [`Records`] and never knows which.

use super::*;

/// A package's records, one after another: each record's header, then its data (written
/// into a file of the destination, or read past), then its trailer.
pub(crate) trait Records {
    /// The next record, or `None` at the end; `seen` records came before it.
    fn record(&mut self, seen: u32) -> Result<Option<Record>, Refused>;
    /// The record's data, written to `out` (when there is one and no write has failed
    /// yet: a failed write is kept in `write_error`) at the record's offsets. With `hash`,
    /// the data's hash: BLAKE3 of a dense record's data, the sparse hash of a sparse
    /// file's whole content.
    fn data(
        &mut self,
        record: &Record,
        out: Option<&fs::File>,
        buf: &mut [u8],
        write_error: &mut Option<io::Error>,
        hash: bool,
    ) -> Result<Option<[u8; 32]>, Refused>;
    /// The record's trailer: whether the file held still while it was read, and its
    /// hashes.
    fn trailer(&mut self) -> Result<package::Trailer, Refused>;
    /// The end: nothing may follow the last record.
    fn end(&mut self) -> Result<(), Refused>;
    /// Whether a package may carry no more data than the task's packages hold: a
    /// staged package is hostile input; the source's own files are not.
    fn bounded(&self) -> bool {
        true
    }
}

/// A package stream, authenticated and decompressed.
pub(crate) struct Stream<R> {
    stream: R,
    version: u8,
}

impl<R: Read> Stream<R> {
    pub(crate) fn begin(mut stream: R) -> Result<Stream<R>, Refused> {
        let version = package::read_begin(&mut stream)?;
        Ok(Stream { stream, version })
    }
}

impl<R: Read> Records for Stream<R> {
    fn record(&mut self, seen: u32) -> Result<Option<Record>, Refused> {
        Ok(package::read_record(&mut self.stream, seen, self.version)?)
    }

    fn data(
        &mut self,
        record: &Record,
        out: Option<&fs::File>,
        buf: &mut [u8],
        write_error: &mut Option<io::Error>,
        hash: bool,
    ) -> Result<Option<[u8; 32]>, Refused> {
        copy_data(&mut self.stream, record, out, buf, write_error, hash)
    }

    fn trailer(&mut self) -> Result<package::Trailer, Refused> {
        Ok(package::read_trailer(&mut self.stream)?)
    }

    fn end(&mut self) -> Result<(), Refused> {
        let mut extra = [0u8; 1];
        if self
            .stream
            .read(&mut extra)
            .map_err(|e| Refused::Stream(StreamError::Io(e)))?
            != 0
        {
            return Err(Refused::Stream(StreamError::Malformed(
                "data after the end",
            )));
        }
        Ok(())
    }
}
