//! Pictures a model can look at: a downloaded image decoded, scaled down so that its longer
//! side is at most the configured size (`mcp.image_size`), and encoded again, small enough to
//! travel inside a tool result as MCP image content.
//!
//! The file comes from whoever sent the message, so decoding is bounded: the image's declared
//! size is checked against [`MAX_SIDE`] before any pixel is decoded, and the decoder's memory
//! against [`MAX_DECODE_BYTES`].

use std::io::Cursor;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// Widest or tallest image decoded, in pixels.
pub const MAX_SIDE: u32 = 16_384;

/// Most memory the decoder may take, the decoded pixels included.
pub const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// JPEG quality of a scaled photograph: sharp enough to read text in a screenshot.
const JPEG_QUALITY: u8 = 82;

/// A scaled picture, ready to send.
#[derive(Debug)]
pub struct Picture {
    pub data: Vec<u8>,
    pub mime_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Why a file gave no picture; the text completes "the image could not be shown: …".
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("the file cannot be read ({0})")]
    Read(#[from] std::io::Error),
    #[error("it is not an image this server can decode ({0})")]
    Decode(image::ImageError),
    #[error("it could not be encoded again ({0})")]
    Encode(image::ImageError),
}

/// The image in `path` with its longer side at most `max_side` pixels (never enlarged): PNG
/// when it has transparency, JPEG otherwise. The format is told by the content, not the name.
pub fn scaled(path: &Path, max_side: u32) -> Result<Picture, PictureError> {
    let mut reader = ImageReader::open(path)?.with_guessed_format()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let decoded = reader.decode().map_err(PictureError::Decode)?;
    let picture = if decoded.width().max(decoded.height()) > max_side {
        decoded.resize(max_side, max_side, FilterType::Triangle)
    } else {
        decoded
    };
    encode(&picture)
}

fn encode(picture: &DynamicImage) -> Result<Picture, PictureError> {
    let mut data = Vec::new();
    let mime_type = if picture.color().has_alpha() {
        picture
            .write_to(&mut Cursor::new(&mut data), ImageFormat::Png)
            .map_err(PictureError::Encode)?;
        "image/png"
    } else {
        JpegEncoder::new_with_quality(&mut data, JPEG_QUALITY)
            .encode_image(&picture.to_rgb8())
            .map_err(PictureError::Encode)?;
        "image/jpeg"
    };
    Ok(Picture {
        data,
        mime_type,
        width: picture.width(),
        height: picture.height(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, picture: &DynamicImage, format: ImageFormat) -> PathBuf {
        let path = dir.join(name);
        picture.save_with_format(&path, format).unwrap();
        path
    }

    #[test]
    fn a_large_photo_is_scaled_to_the_size_keeping_its_shape() {
        let dir = tempfile::tempdir().unwrap();
        let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(1600, 900, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        }));
        // Named .png but holding a JPEG: the content decides.
        let path = write(dir.path(), "photo.png", &photo, ImageFormat::Jpeg);
        let picture = scaled(&path, 800).unwrap();
        assert_eq!((picture.width, picture.height), (800, 450));
        assert_eq!(picture.mime_type, "image/jpeg");
        let back = image::load_from_memory(&picture.data).unwrap();
        assert_eq!((back.width(), back.height()), (800, 450));
    }

    #[test]
    fn a_small_picture_is_not_enlarged_and_transparency_stays() {
        let dir = tempfile::tempdir().unwrap();
        let sticker = DynamicImage::ImageRgba8(RgbaImage::from_pixel(120, 80, Rgba([1, 2, 3, 0])));
        let path = write(dir.path(), "sticker.png", &sticker, ImageFormat::Png);
        let picture = scaled(&path, 1024).unwrap();
        assert_eq!((picture.width, picture.height), (120, 80));
        assert_eq!(picture.mime_type, "image/png");
        let back = image::load_from_memory(&picture.data).unwrap();
        assert!(back.color().has_alpha());
    }

    #[test]
    fn what_is_not_an_image_or_too_large_is_refused_without_decoding_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.jpg");
        std::fs::write(&path, b"\xFF\xD8\xFF\xE0 not a picture").unwrap();
        let err = scaled(&path, 512).unwrap_err();
        assert!(matches!(err, PictureError::Decode(_)), "{err}");
        // A PNG header declaring 100 000 x 100 000 pixels and no pixels at all.
        let bomb = dir.path().join("bomb.png");
        let header = {
            let mut png = Vec::new();
            let encoder = image::codecs::png::PngEncoder::new(&mut png);
            image::ImageEncoder::write_image(
                encoder,
                &[0; 4],
                1,
                1,
                image::ExtendedColorType::Rgba8,
            )
            .unwrap();
            // IHDR's width and height sit at bytes 16..24; the CRC no longer matches, which the
            // decoder would notice only after the size check.
            png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
            png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
            png
        };
        std::fs::write(&bomb, header).unwrap();
        assert!(scaled(&bomb, 512).is_err());
        assert!(matches!(
            scaled(&dir.path().join("missing.jpg"), 512),
            Err(PictureError::Read(_))
        ));
    }
}
