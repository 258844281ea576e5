//! Preparing a voice note: Ogg/Opus audio, its length, and the 64-bar waveform WhatsApp draws.
//!
//! Anything that is not Ogg/Opus already is converted with `ffmpeg` (a declared dependency of
//! the package), run as a child process with a time limit. The waveform also comes from
//! ffmpeg's decoded samples; without ffmpeg an Ogg/Opus file is still sent, with the length read
//! from its last page and no waveform.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::engine::{EngineError, OutgoingFile};

/// Bars in a voice note's waveform, as WhatsApp clients draw it.
pub(super) const WAVEFORM_BARS: usize = 64;
/// The longest a conversion may take.
const FFMPEG_TIMEOUT: Duration = Duration::from_secs(120);
/// Sample rate of the decoded audio used for the waveform.
const PCM_RATE: u32 = 8000;

/// A voice note ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VoiceNote {
    pub(super) ogg_opus: Vec<u8>,
    pub(super) seconds: u32,
    pub(super) waveform: Option<Vec<u8>>,
}

/// Turns an outgoing audio file into a voice note. ffmpeg reads it through a descriptor of the
/// handle opened when the file was checked (`-i /dev/stdin`: seekable, since it is a regular
/// file), never by its path.
pub(super) async fn prepare(file: &OutgoingFile) -> Result<VoiceNote, EngineError> {
    let original = file.read().await?;
    if is_ogg_opus(&original) {
        let from_header = ogg_opus_seconds(&original);
        return match decode_pcm(file).await {
            Ok(pcm) => Ok(VoiceNote {
                seconds: from_header.unwrap_or_else(|| pcm_seconds(&pcm)),
                waveform: Some(waveform(&pcm)),
                ogg_opus: original,
            }),
            Err(FfmpegError::Missing) => Ok(VoiceNote {
                seconds: from_header.unwrap_or(0),
                waveform: None,
                ogg_opus: original,
            }),
            Err(err) => Err(err.into()),
        };
    }
    let converted = run_ffmpeg(
        file,
        &[
            "-vn",
            "-ac",
            "1",
            "-ar",
            "48000",
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-application",
            "voip",
            "-f",
            "ogg",
            "pipe:1",
        ],
    )
    .await?;
    if !is_ogg_opus(&converted) {
        return Err(EngineError::Media(
            "ffmpeg did not produce Ogg/Opus audio (is it built with libopus?)".to_owned(),
        ));
    }
    let pcm = decode_pcm(file).await?;
    Ok(VoiceNote {
        seconds: ogg_opus_seconds(&converted).unwrap_or_else(|| pcm_seconds(&pcm)),
        waveform: Some(waveform(&pcm)),
        ogg_opus: converted,
    })
}

#[derive(Debug)]
enum FfmpegError {
    Missing,
    Failed(String),
}

impl From<FfmpegError> for EngineError {
    fn from(err: FfmpegError) -> Self {
        match err {
            FfmpegError::Missing => EngineError::Media(
                "voice notes need ffmpeg to convert audio to Ogg/Opus, and it is not installed: run `apt install ffmpeg`"
                    .to_owned(),
            ),
            FfmpegError::Failed(detail) => {
                EngineError::Media(format!("ffmpeg could not convert the audio: {detail}"))
            }
        }
    }
}

/// Mono 16-bit samples at [`PCM_RATE`].
async fn decode_pcm(file: &OutgoingFile) -> Result<Vec<i16>, FfmpegError> {
    let rate = PCM_RATE.to_string();
    let raw = run_ffmpeg(
        file,
        &["-vn", "-ac", "1", "-ar", &rate, "-f", "s16le", "pipe:1"],
    )
    .await?;
    Ok(raw
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}

/// Runs ffmpeg (from `PATH`) quietly on `input` with the output `args`; returns its stdout.
async fn run_ffmpeg(input: &OutgoingFile, args: &[&str]) -> Result<Vec<u8>, FfmpegError> {
    // `-nostdin` only stops ffmpeg's keyboard commands; the input is opened by name.
    let mut all = vec![
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-i",
        "/dev/stdin",
    ];
    all.extend_from_slice(args);
    let stdin = input
        .duplicate()
        .map_err(|err| FfmpegError::Failed(err.to_string()))?;
    run_converter("ffmpeg", &all, Stdio::from(stdin)).await
}

async fn run_converter(program: &str, args: &[&str], stdin: Stdio) -> Result<Vec<u8>, FfmpegError> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => FfmpegError::Missing,
            _ => FfmpegError::Failed(err.to_string()),
        })?;
    let mut stdout = child.stdout.take().ok_or(FfmpegError::Missing)?;
    let mut stderr = child.stderr.take().ok_or(FfmpegError::Missing)?;
    let work = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (read_out, read_err) =
            tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        read_out.map_err(|e| FfmpegError::Failed(e.to_string()))?;
        read_err.map_err(|e| FfmpegError::Failed(e.to_string()))?;
        let status = child
            .wait()
            .await
            .map_err(|e| FfmpegError::Failed(e.to_string()))?;
        if status.success() {
            Ok(out)
        } else {
            let detail = String::from_utf8_lossy(&err);
            let detail = detail.lines().last().unwrap_or("no message").trim();
            Err(FfmpegError::Failed(format!("{status}: {detail}")))
        }
    };
    tokio::time::timeout(FFMPEG_TIMEOUT, work)
        .await
        .map_err(|_| FfmpegError::Failed(format!("took longer than {FFMPEG_TIMEOUT:?}")))?
}

/// An Ogg stream whose first packet is an Opus header.
pub(super) fn is_ogg_opus(bytes: &[u8]) -> bool {
    bytes.starts_with(b"OggS")
        && bytes
            .get(..bytes.len().min(256))
            .is_some_and(|head| head.windows(8).any(|w| w == b"OpusHead"))
}

/// The length of an Ogg/Opus stream from the granule position of its last page, minus the
/// encoder's pre-skip (both in 48 kHz samples), rounded up to whole seconds.
pub(super) fn ogg_opus_seconds(bytes: &[u8]) -> Option<u32> {
    let head = bytes.windows(8).position(|w| w == b"OpusHead")?;
    let pre_skip = u64::from(u16::from_le_bytes([
        *bytes.get(head + 10)?,
        *bytes.get(head + 11)?,
    ]));
    let last_page = bytes.windows(4).rposition(|w| w == b"OggS")?;
    let granule: [u8; 8] = bytes.get(last_page + 6..last_page + 14)?.try_into().ok()?;
    let granule = u64::from_le_bytes(granule);
    if granule == u64::MAX {
        return None;
    }
    let samples = granule.saturating_sub(pre_skip);
    u32::try_from(samples.div_ceil(48_000)).ok()
}

fn pcm_seconds(pcm: &[i16]) -> u32 {
    u32::try_from((pcm.len() as u64).div_ceil(u64::from(PCM_RATE))).unwrap_or(u32::MAX)
}

/// [`WAVEFORM_BARS`] loudness values from 0 to 100: the mean amplitude of each slice of the
/// recording, scaled so the loudest slice is 100.
pub(super) fn waveform(pcm: &[i16]) -> Vec<u8> {
    if pcm.is_empty() {
        return vec![0; WAVEFORM_BARS];
    }
    let means: Vec<f64> = (0..WAVEFORM_BARS)
        .map(|bar| {
            let start = bar * pcm.len() / WAVEFORM_BARS;
            let end = ((bar + 1) * pcm.len() / WAVEFORM_BARS)
                .max(start + 1)
                .min(pcm.len());
            let slice = &pcm[start.min(pcm.len() - 1)..end];
            slice.iter().map(|s| f64::from(*s).abs()).sum::<f64>() / slice.len() as f64
        })
        .collect();
    let loudest = means.iter().copied().fold(0.0, f64::max);
    if loudest <= 0.0 {
        return vec![0; WAVEFORM_BARS];
    }
    means
        .iter()
        .map(|m| ((m / loudest) * 100.0).round().clamp(0.0, 100.0) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waveform_has_64_bars_scaled_to_the_loudest() {
        let mut pcm = vec![0i16; 6400];
        for s in &mut pcm[3200..] {
            *s = 10_000;
        }
        for s in &mut pcm[6300..] {
            *s = -20_000;
        }
        let bars = waveform(&pcm);
        assert_eq!(bars.len(), WAVEFORM_BARS);
        assert_eq!(bars[0], 0);
        assert_eq!(bars[40], 50);
        assert_eq!(*bars.last().unwrap(), 100);
        assert_eq!(waveform(&[]), vec![0; WAVEFORM_BARS]);
        assert_eq!(waveform(&[0, 0, 0]).len(), WAVEFORM_BARS);
    }

    /// One Ogg page header (27 bytes) with the given granule position, then `body`.
    fn page(granule: u64, body: &[u8]) -> Vec<u8> {
        let mut page = b"OggS".to_vec();
        page.push(0); // version
        page.push(0); // header type
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&[0; 13]); // serial, sequence, checksum, segment count
        page.extend_from_slice(body);
        page
    }

    #[test]
    fn ogg_opus_length_comes_from_the_last_granule() {
        let mut head = b"OpusHead".to_vec();
        head.push(1); // version
        head.push(1); // channels
        head.extend_from_slice(&312u16.to_le_bytes()); // pre-skip
        head.extend_from_slice(&48_000u32.to_le_bytes());
        let mut stream = page(0, &head);
        stream.extend(page(48_000 * 3 + 312, b"audio"));
        assert!(is_ogg_opus(&stream));
        assert_eq!(ogg_opus_seconds(&stream), Some(3));
        stream.extend(page(48_000 * 7 + 1000, b"more"));
        assert_eq!(ogg_opus_seconds(&stream), Some(8));
        assert!(!is_ogg_opus(b"ID3\x03 mp3 data"));
        assert_eq!(ogg_opus_seconds(b"RIFF....WAVE"), None);
    }

    /// A WAV file of `seconds` of a 440 Hz tone, mono 16-bit at 8 kHz.
    fn wav(seconds: u32) -> Vec<u8> {
        let rate = 8_000u32;
        let samples: Vec<i16> = (0..rate * seconds)
            .map(|n| {
                ((n as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8_000.0) as i16
            })
            .collect();
        let data_len = samples.len() as u32 * 2;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // PCM
        out.extend_from_slice(&1u16.to_le_bytes()); // mono
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2).to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for sample in samples {
            out.extend_from_slice(&sample.to_le_bytes());
        }
        out
    }

    #[tokio::test]
    async fn ffmpeg_converts_the_checked_file_not_what_its_path_became() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("note.wav");
        std::fs::write(&path, wav(2)).unwrap();
        let file = OutgoingFile::new(
            std::fs::File::open(&path).unwrap(),
            path.clone(),
            "note.wav".to_owned(),
            "audio/wav".to_owned(),
            u64::MAX,
        );
        // The path now names a longer recording; the note must still be the two seconds.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, wav(5)).unwrap();
        let note = prepare(&file)
            .await
            .expect("ffmpeg with libopus (tests/run.sh installs it)");
        assert!(is_ogg_opus(&note.ogg_opus));
        assert_eq!(note.seconds, 2);
        let bars = note.waveform.unwrap();
        assert_eq!(bars.len(), 64);
        assert!(bars.iter().all(|&bar| bar > 0), "{bars:?}");
    }

    #[tokio::test]
    async fn a_missing_converter_is_reported_clearly() {
        let err = run_converter("/nonexistent/ffmpeg", &["-version"], Stdio::null())
            .await
            .unwrap_err();
        let err = EngineError::from(err);
        assert!(err.to_string().contains("apt install ffmpeg"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_converter_says_why() {
        // `sh -c 'echo …>&2; exit 3'` stands in for an ffmpeg that rejects its input.
        let err = run_converter(
            "sh",
            &["-c", "echo 'Invalid data found' >&2; exit 3"],
            Stdio::null(),
        )
        .await
        .unwrap_err();
        let text = EngineError::from(err).to_string();
        assert!(text.contains("Invalid data found"), "{text}");
    }
}
