// The softphone's peer connection as small async functions: create, add the
// microphone, offer with every candidate gathered (no trickle), apply the answer,
// read the call quality. And the phone's WebAudio: level, tone analysis, generated tones.

const G711 = ["audio/PCMU", "audio/PCMA"];
const GATHER_TIMEOUT_MS = 5000;

// iceServers come from the hub's welcome: TURN when configured, otherwise none (host candidates only).
export function createPeer(iceServers = []) {
  return new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
}

// G.711 first, so the media worker and a SIP trunk need no transcoding; the rest stays as a fallback.
export function preferG711(transceiver) {
  const caps = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities("audio");
  if (!caps || !transceiver.setCodecPreferences) return;
  const rank = (c) => { const i = G711.indexOf(c.mimeType); return i < 0 ? G711.length : i; };
  transceiver.setCodecPreferences([...caps.codecs].sort((a, b) => rank(a) - rank(b)));
}

// One sendrecv audio transceiver carrying the microphone; returns it (its sender swaps devices).
export function addMicrophone(pc, stream) {
  const [track] = stream.getAudioTracks();
  const transceiver = pc.addTransceiver(track, { direction: "sendrecv", streams: [stream] });
  preferG711(transceiver);
  return transceiver;
}

export function gatheringComplete(pc, timeoutMs = GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    // A candidate that never comes (an unreachable TURN server) must not block the call: offer what we have.
    const timer = setTimeout(() => { pc.removeEventListener("icegatheringstatechange", done); resolve(); }, timeoutMs);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

// The local offer with ICE fully gathered, as SDP text to send in `phone-offer`.
export async function makeOffer(pc, { iceRestart = false, timeoutMs = GATHER_TIMEOUT_MS } = {}) {
  // An offer still waiting for its answer is replaced, not stacked.
  if (pc.signalingState === "have-local-offer") await pc.setLocalDescription({ type: "rollback" });
  const offer = await pc.createOffer({ iceRestart });
  await pc.setLocalDescription(offer);
  await gatheringComplete(pc, timeoutMs);
  return pc.localDescription.sdp;
}

// Apply the worker's answer; false when it no longer fits (the offer was replaced meanwhile).
export async function applyAnswer(pc, sdp) {
  if (pc.signalingState !== "have-local-offer") return false;
  await pc.setRemoteDescription({ type: "answer", sdp });
  return true;
}

export async function replaceMicrophone(transceiver, track) {
  await transceiver.sender.replaceTrack(track);
}

// {rtt_ms, jitter_ms, loss_pct, codec} of the audio; loss over the interval since `prev` when given.
export async function readStats(pc, prev = null) {
  const report = await pc.getStats();
  let inbound = null, remote = null, pair = null;
  const byId = new Map();
  report.forEach((s) => {
    byId.set(s.id, s);
    if (s.type === "inbound-rtp" && s.kind === "audio") inbound = s;
    else if (s.type === "remote-inbound-rtp" && s.kind === "audio") remote = s;
    else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
  });
  const rtt = pair && pair.currentRoundTripTime !== undefined ? pair.currentRoundTripTime
    : remote && remote.roundTripTime !== undefined ? remote.roundTripTime : null;
  const lost = inbound ? Math.max(0, inbound.packetsLost || 0) : 0;
  const received = inbound ? inbound.packetsReceived || 0 : 0;
  const dLost = lost - (prev ? prev.lost : 0), dReceived = received - (prev ? prev.received : 0);
  const codecStats = inbound && inbound.codecId ? byId.get(inbound.codecId) : null;
  return {
    rtt_ms: rtt === null ? null : Math.round(rtt * 1000),
    jitter_ms: inbound && inbound.jitter !== undefined ? Math.round(inbound.jitter * 1000) : null,
    loss_pct: dLost + dReceived > 0 ? Math.round((1000 * dLost) / (dLost + dReceived)) / 10 : 0,
    codec: codecStats ? codecStats.mimeType.replace(/^audio\//, "") : "",
    lost,
    received,
  };
}

// "good" | "fair" | "poor" for the quality indicator (ITU-T G.114 puts mouth-to-ear comfort under ~150 ms one way).
export function qualityLevel({ rtt_ms, jitter_ms, loss_pct }) {
  if (rtt_ms > 400 || jitter_ms > 50 || loss_pct > 5) return "poor";
  if (rtt_ms > 200 || jitter_ms > 30 || loss_pct > 1) return "fair";
  return "good";
}

// ---------------------------------------------------------------- audio: levels, tones

// An AnalyserNode fed by a stream. Chromium only pulls a remote WebRTC stream into
// WebAudio while a media element plays it too: the phone's <audio> does.
export function analyse(ctx, stream, fftSize = 2048) {
  const node = ctx.createAnalyser();
  node.fftSize = fftSize;
  node.smoothingTimeConstant = 0;
  const source = ctx.createMediaStreamSource(stream);
  source.connect(node);
  return { node, stop: () => source.disconnect() };
}

// RMS level in dBFS of the analyser's current window (-100 for silence).
export function levelDb(node, buf = new Float32Array(node.fftSize)) {
  node.getFloatTimeDomainData(buf);
  let sum = 0;
  for (const x of buf) sum += x * x;
  const rms = Math.sqrt(sum / buf.length);
  return rms > 1e-5 ? 20 * Math.log10(rms) : -100;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The dominant frequency over `ms`: spectra averaged in power, peak in the telephone band
// refined by parabolic interpolation; `prominence_db` is the peak over the band's median,
// so silence and noise (a flat spectrum) are told apart from a tone.
export async function measureTone(node, sampleRate, { ms = 500, lowHz = 100, highHz = 3800 } = {}) {
  const bins = node.frequencyBinCount;
  const spectrum = new Float32Array(bins), power = new Float64Array(bins);
  const samples = Math.max(1, Math.round(ms / 50));
  let level = 0;
  for (let k = 0; k < samples; k++) {
    if (k) await sleep(50);
    node.getFloatFrequencyData(spectrum);
    for (let i = 0; i < bins; i++) power[i] += 10 ** (spectrum[i] / 10);
    level += 10 ** (levelDb(node) / 10);
  }
  const hzPerBin = sampleRate / node.fftSize;
  const lo = Math.max(1, Math.floor(lowHz / hzPerBin)), hi = Math.min(bins - 2, Math.ceil(highHz / hzPerBin));
  let peak = lo;
  for (let i = lo; i <= hi; i++) if (power[i] > power[peak]) peak = i;
  const db = (i) => 10 * Math.log10(power[i] / samples + 1e-20);
  const [a, b, c] = [db(peak - 1), db(peak), db(peak + 1)];
  const shift = a - 2 * b + c === 0 ? 0 : (0.5 * (a - c)) / (a - 2 * b + c);
  const band = [];
  for (let i = lo; i <= hi; i++) band.push(db(i));
  band.sort((x, y) => x - y);
  return {
    frequency: Math.round((peak + shift) * hzPerBin * 10) / 10,
    level_db: Math.round(10 * Math.log10(level / samples) * 10) / 10,
    prominence_db: Math.round((b - band[band.length >> 1]) * 10) / 10,
  };
}

// A tone pattern through WebAudio (no sound files): the sum of `freqs`, sounding
// during each part [start s, length s]. Returns {stop}.
export function playTones(ctx, freqs, parts, gainValue = 0.08) {
  const gain = ctx.createGain(), t0 = ctx.currentTime + 0.02;
  gain.gain.value = 0;
  for (const [start, length] of parts) {
    gain.gain.setValueAtTime(gainValue, t0 + start);
    gain.gain.setValueAtTime(0, t0 + start + length);
  }
  const end = t0 + Math.max(...parts.map(([s, l]) => s + l));
  const oscs = freqs.map((f) => {
    const o = ctx.createOscillator();
    o.frequency.value = f;
    o.connect(gain);
    o.start(t0);
    o.stop(end);
    return o;
  });
  gain.connect(ctx.destination);
  return {
    stop() {
      oscs.forEach((o) => { try { o.stop(); } catch { /* already stopped */ } });
      gain.disconnect();
    },
  };
}

// The row and column frequencies of a keypad key (ITU-T Q.23).
const PAD = ["123A", "456B", "789C", "*0#D"];
export function dtmfFrequencies(digit) {
  const row = PAD.findIndex((r) => r.includes(digit));
  return [[697, 770, 852, 941][row], [1209, 1336, 1477, 1633][PAD[row].indexOf(digit)]];
}
