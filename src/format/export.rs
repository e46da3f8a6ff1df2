//! Writing 2-D images: `.npy` and `.tiff` with exact values in their native dtype, `.png` as a
//! viewable RGB picture. Files are written under a temporary name and renamed when complete, so
//! a failed export leaves nothing behind.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A row-major 2-D image with exact values.
#[derive(Debug, Clone, Copy)]
pub enum ImageData<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    F32(&'a [f32]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Npy,
    Tiff,
    Png,
}

/// Output format from the file extension.
pub fn format_of(path: &Path) -> Result<ImageFormat> {
    match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("npy") => Ok(ImageFormat::Npy),
        Some("tif") | Some("tiff") => Ok(ImageFormat::Tiff),
        Some("png") => Ok(ImageFormat::Png),
        _ => Err(Error::Invalid(format!("{}: unknown output format (use .npy, .tiff or .png)", path.display()))),
    }
}

/// Check that the output's directory exists before any work is done.
pub fn check_output_dir(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Invalid(format!("{}: output directory {} does not exist", path.display(), dir.display())));
    }
    Ok(())
}

/// Temporary sibling path used while writing.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    path.with_file_name(format!(".{name}.part{}", std::process::id()))
}

/// Write to a temporary file with `f`, then rename over `path`. The temp file is removed on error.
pub fn write_atomic(path: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    check_output_dir(path)?;
    let tmp = temp_path(path);
    match f(&tmp) {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

pub fn write_npy(path: &Path, rows: usize, cols: usize, data: ImageData) -> Result<()> {
    write_atomic(path, |tmp| {
        let r = match data {
            ImageData::U8(d) => ndarray_npy::write_npy(tmp, &ndarray::ArrayView2::from_shape((rows, cols), d).unwrap()),
            ImageData::U16(d) => {
                ndarray_npy::write_npy(tmp, &ndarray::ArrayView2::from_shape((rows, cols), d).unwrap())
            }
            ImageData::U32(d) => {
                ndarray_npy::write_npy(tmp, &ndarray::ArrayView2::from_shape((rows, cols), d).unwrap())
            }
            ImageData::F32(d) => {
                ndarray_npy::write_npy(tmp, &ndarray::ArrayView2::from_shape((rows, cols), d).unwrap())
            }
        };
        r.map_err(|e| Error::Invalid(format!("{}: writing npy: {e}", path.display())))
    })
}

pub fn write_tiff(path: &Path, rows: usize, cols: usize, data: ImageData) -> Result<()> {
    use tiff::encoder::{TiffEncoder, colortype};
    write_atomic(path, |tmp| {
        let f = std::fs::File::create(tmp).map_err(|e| Error::io(path, e))?;
        let mut enc = TiffEncoder::new(std::io::BufWriter::new(f))
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        let (w, h) = (cols as u32, rows as u32);
        let r = match data {
            ImageData::U8(d) => enc.write_image::<colortype::Gray8>(w, h, d),
            ImageData::U16(d) => enc.write_image::<colortype::Gray16>(w, h, d),
            ImageData::U32(d) => enc.write_image::<colortype::Gray32>(w, h, d),
            ImageData::F32(d) => enc.write_image::<colortype::Gray32Float>(w, h, d),
        };
        r.map_err(|e| Error::Invalid(format!("{}: writing tiff: {e}", path.display())))
    })
}

/// Write an RGB8 picture (rows x cols x 3).
pub fn write_png_rgb(path: &Path, rows: usize, cols: usize, rgb: &[u8]) -> Result<()> {
    write_atomic(path, |tmp| {
        let img = image::RgbImage::from_raw(cols as u32, rows as u32, rgb.to_vec())
            .ok_or_else(|| Error::Invalid("rgb buffer has the wrong size".into()))?;
        img.save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| Error::Invalid(format!("{}: writing png: {e}", path.display())))
    })
}
