// Audio worklets of the fastvoice page: the microphone as 20 ms PCM16 frames, and playback with a
// small jitter buffer that says which marks it has played (what the listener actually heard).

class FastvoiceCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = Math.round(sampleRate / 50); // 20 ms: one WebSocket message per frame
    this.buf = new Int16Array(this.frame);
    this.n = 0;
    this.energy = 0;
  }

  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    for (let i = 0; i < ch.length; i++) {
      const x = Math.max(-1, Math.min(1, ch[i]));
      this.buf[this.n++] = x < 0 ? x * 32768 : x * 32767;
      this.energy += x * x;
      if (this.n === this.frame) {
        const level = Math.sqrt(this.energy / this.frame);
        // t: the AudioContext time at the end of this frame (for the page's latency trace).
        const t = currentTime + (i + 1) / sampleRate;
        this.port.postMessage({ pcm: this.buf.buffer, level, t }, [this.buf.buffer]);
        this.buf = new Int16Array(this.frame);
        this.n = 0;
        this.energy = 0;
      }
    }
    return true;
  }
}

class FastvoicePlayback extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // Int16Array chunks
    this.head = 0; // read offset in queue[0]
    this.buffered = 0;
    this.written = 0; // samples ever queued (since the last clear)
    this.played = 0; // samples ever played
    this.marks = []; // {at, name}: acknowledged once `played` reaches `at`
    this.primed = false;
    this.playing = false;
    this.prebuffer = Math.round(sampleRate * 0.04); // 40 ms before starting, after silence
    this.energy = 0;
    this.counted = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    if (msg.audio) {
      const pcm = new Int16Array(msg.audio);
      this.queue.push(pcm);
      this.buffered += pcm.length;
      this.written += pcm.length;
    } else if (msg.mark) {
      this.marks.push({ at: this.played + this.buffered, name: msg.mark });
    } else if (msg.clear) {
      // Barge-in: what is buffered is never heard; the server forgets its marks too.
      this.queue = [];
      this.head = 0;
      this.buffered = 0;
      this.marks = [];
      this.primed = this.playing = false;
      this.port.postMessage({ cleared: true, played: this.played });
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    if (!this.primed && this.buffered >= Math.min(this.prebuffer, 1)) {
      this.primed = this.buffered >= this.prebuffer || this.marks.length > 0;
    }
    let i = 0;
    if (this.primed && !this.playing) {
      this.playing = true; // a reply starts being heard now
      this.port.postMessage({ started: currentTime, played: this.played });
    }
    if (this.primed) {
      while (i < out.length && this.queue.length) {
        const chunk = this.queue[0];
        const take = Math.min(out.length - i, chunk.length - this.head);
        for (let k = 0; k < take; k++) {
          const v = chunk[this.head + k] / 32768;
          out[i + k] = v;
          this.energy += v * v;
        }
        i += take;
        this.head += take;
        this.buffered -= take;
        this.played += take;
        this.counted += take;
        if (this.head === chunk.length) {
          this.queue.shift();
          this.head = 0;
        }
      }
      if (!this.queue.length) this.primed = this.playing = false;
    }
    for (; i < out.length; i++) out[i] = 0;
    while (this.marks.length && this.marks[0].at <= this.played) {
      this.port.postMessage({ mark: this.marks.shift().name, played: this.played });
    }
    if (this.counted >= sampleRate / 10) {
      this.port.postMessage({ stats: true, played: this.played, level: Math.sqrt(this.energy / this.counted) });
      this.energy = 0;
      this.counted = 0;
    }
    return true;
  }
}

registerProcessor("fastvoice-capture", FastvoiceCapture);
registerProcessor("fastvoice-playback", FastvoicePlayback);
