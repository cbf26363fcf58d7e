//! Archive work done on a blocking thread and read as an async stream of
//! chunks while it is written (a download, a data agent's export): what the
//! work writes goes through a small channel, so a slow reader slows the
//! writer instead of filling memory; an error ends the stream with it.

use std::io::{self, Write};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

/// How many chunks may wait for the reader.
const DEPTH: usize = 8;
/// The size of the chunks handed over.
const CHUNK: usize = 256 * 1024;

/// Hands what is written to the reader, chunk by chunk.
struct ChannelWriter(mpsc::Sender<io::Result<Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::other("the reader went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `work` on a blocking thread, writing to the answered stream; an
/// error of the work (or of its last flush) is the stream's last item, so
/// the reader sees a cut-off body rather than a whole-looking one.
pub fn blocking_stream<E: std::fmt::Display>(
    work: impl FnOnce(&mut dyn Write) -> Result<(), E> + Send + 'static,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut out = io::BufWriter::with_capacity(CHUNK, ChannelWriter(tx.clone()));
        let done = work(&mut out)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|()| out.flush());
        // What is still buffered after an error is dropped, not sent after it.
        drop(out.into_parts());
        if let Err(e) = done {
            let _ = tx.blocking_send(Err(e));
        }
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    #[tokio::test]
    async fn chunks_arrive_in_order_and_an_error_ends_the_stream() {
        let ok = blocking_stream(|out| {
            for i in 0..1000u32 {
                out.write_all(&i.to_le_bytes())?;
            }
            Ok::<(), io::Error>(())
        });
        let bytes: Vec<u8> = ok.map(|c| c.unwrap().to_vec()).concat().await;
        let expected: Vec<u8> = (0..1000u32).flat_map(u32::to_le_bytes).collect();
        assert_eq!(bytes, expected);

        let failing = blocking_stream(|out| {
            out.write_all(b"partial")?;
            Err::<(), io::Error>(io::Error::other("the archive is corrupt"))
        });
        let items: Vec<io::Result<Bytes>> = failing.collect().await;
        let last = items.last().unwrap();
        assert!(
            last.as_ref()
                .is_err_and(|e| e.to_string().contains("corrupt")),
            "{items:?}"
        );
    }
}
