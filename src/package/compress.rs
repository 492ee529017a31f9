//! The zstd stream a package's records are written into.

use std::io::{self, Write};

/// Where a package's records go: a stream that can be told whether the next data is
/// worth compressing.
pub trait Sink: Write {
    /// `false` before the data of a file in an already-compressed format.
    fn compressible(&mut self, worth_it: bool) -> io::Result<()>;
}

/// The zstd stream of a package, which compresses the data of already-compressed
/// formats at zstd's fastest level: trying hard on them costs time and saves nothing
/// (zstd then stores their blocks raw, a few bytes per 128 KiB over the data itself).
pub struct Compressor {
    encoder: zstd::stream::raw::Encoder<'static>,
    /// The compressed stream: zstd writes straight into it, with no buffer between.
    out: Vec<u8>,
    level: i32,
    current: i32,
}

/// zstd's level for data that does not compress.
const STORE_LEVEL: i32 = -7;

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("level", &self.level)
            .field("current", &self.current)
            .field("written", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor writing into `buffer` (emptied first); `expected` bytes of data
    /// are coming, and room is made for them at once. A worker hands the same buffer
    /// from package to package, so that its pages are not faulted in anew for every one.
    pub fn reusing(level: u8, expected: u64, mut buffer: Vec<u8>) -> io::Result<Compressor> {
        let room = usize::try_from(expected.saturating_add(64 * 1024)).unwrap_or(usize::MAX);
        buffer.clear();
        buffer.reserve(room);
        let level = i32::from(level);
        let mut encoder = zstd::stream::raw::Encoder::new(level)?;
        encoder.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(false))?;
        Ok(Compressor {
            encoder,
            out: buffer,
            level,
            current: level,
        })
    }

    fn room(&mut self) {
        if self.out.capacity() - self.out.len() < 128 * 1024 {
            self.out.reserve(1 << 20);
        }
    }

    pub fn finish(mut self) -> io::Result<Vec<u8>> {
        use zstd::stream::raw::Operation as _;
        loop {
            self.room();
            let pos = self.out.len();
            let mut output = zstd::stream::raw::OutBuffer::around_pos(&mut self.out, pos);
            if self.encoder.finish(&mut output, true)? == 0 {
                break;
            }
        }
        Ok(self.out)
    }
}

impl Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use zstd::stream::raw::Operation as _;
        let mut input = zstd::stream::raw::InBuffer::around(buf);
        while input.pos() < buf.len() {
            self.room();
            let pos = self.out.len();
            let mut output = zstd::stream::raw::OutBuffer::around_pos(&mut self.out, pos);
            self.encoder.run(&mut input, &mut output)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Compressor {
    fn compressible(&mut self, worth_it: bool) -> io::Result<()> {
        let level = if worth_it { self.level } else { STORE_LEVEL };
        if level != self.current {
            self.encoder
                .set_parameter(zstd::zstd_safe::CParameter::CompressionLevel(level))?;
            self.current = level;
        }
        Ok(())
    }
}

/// Whether a file's extension names a format that is compressed already (images,
/// audio, video, archives, Office Open XML and OpenDocument files, PDF).
pub fn precompressed(name: &std::ffi::OsStr) -> bool {
    const FORMATS: &[&str] = &[
        "7z", "aac", "apk", "avi", "avif", "bz2", "cab", "docm", "docx", "dotx", "epub", "flac",
        "gif", "gz", "heic", "heif", "jar", "jpeg", "jpg", "m4a", "m4v", "mkv", "mov", "mp3",
        "mp4", "msi", "odp", "ods", "odt", "ogg", "opus", "pdf", "png", "pptm", "pptx", "rar",
        "tgz", "txz", "webm", "webp", "wmv", "xlsb", "xlsm", "xlsx", "xz", "zip", "zst",
    ];
    let ext = crate::scan::rules::extension(name);
    FORMATS
        .iter()
        .any(|f| ext.eq_ignore_ascii_case(f.as_bytes()))
}
