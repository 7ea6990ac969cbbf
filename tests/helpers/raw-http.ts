/**
 * Raw HTTP over a TCP socket to 127.0.0.1: sends exactly the bytes given (malformed request lines, duplicate
 * headers, broken cookies) and reads the answer, which no well-behaved HTTP client would let a test do.
 */
import net from 'node:net';

export interface RawReply {
  /** The status code of the first response line, or 0 when the server closed without answering. */
  status: number;
  head: string;
  text: string;
}

export function rawRequest(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const head = text.split('\r\n\r\n')[0] ?? '';
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, head, text });
    };
    const timer = setTimeout(() => {
      if (settled) return;
      // A response arrived but the connection stayed open (keep-alive): that is an answer, not a hang.
      if (chunks.length > 0) {
        finish();
        return;
      }
      settled = true;
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to ${JSON.stringify(String(bytes).slice(0, 200))}`));
    }, timeoutMs);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      // One response is enough: stop once its head and declared body (if any) have arrived.
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      if (text.startsWith('HTTP/1.1 101')) finish();
      else if (len && text.length - end - 4 >= Number(len[1])) finish();
      else if (/\r\ntransfer-encoding: *chunked/i.test(text.slice(0, end)) && text.endsWith('\r\n0\r\n\r\n')) finish();
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', finish);
    socket.write(bytes);
  });
}
