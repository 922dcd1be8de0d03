#!/usr/bin/env bash
# Generate the caller prompts (webrtc/prompts/<name>.wav) with espeak-ng and sox:
# 8 kHz mono 16-bit, silence trimmed at both ends, peaks at -6 dBFS (music may play beneath).
# Needs espeak-ng and sox (Debian: apt-get install espeak-ng sox). Run from anywhere:
#   scripts/make_prompts.sh [output folder]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-webrtc/prompts}"
voice="${PROMPT_VOICE:-en-us}"
speed="${PROMPT_SPEED:-170}"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

say() {  # say NAME TEXT
  espeak-ng -v "$voice" -s "$speed" -w "$tmp/raw.wav" "$2"
  sox "$tmp/raw.wav" -r 8000 -c 1 -b 16 "$out/$1.wav" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse gain -n -6
}

numbers=(zero one two three four five six seven eight nine ten)

# Whole messages.
say welcome-menu "Welcome. For support press 1, for sales press 2."
say invalid "Sorry, that is not a valid choice."
say closed "We are closed. Please call again during opening hours."
say no-choice "We did not get your choice. Goodbye."
# Played to a caller when an agent answers in a queue that records its calls.
say call-recorded "This call may be recorded for quality and training purposes."
# Announcements to waiting callers are said in parts (the hub plays them in a row):
#   caller-number + number-3            "You are caller number" "three"
#   wait-about + minutes-4              "Your expected wait is about" "four minutes"
say caller-number "You are caller number"
for n in 1 2 3 4 5 6 7 8 9 10; do
  say "number-$n" "${numbers[$n]}"
done
say position-many "More than ten callers are ahead of you."
say wait-about "Your expected wait is about"
say minutes-1 "one minute"
for n in 2 3 4 5 6 7 8 9 10; do
  say "minutes-$n" "${numbers[$n]} minutes"
done
say wait-long "Your expected wait is more than ten minutes."
du -ch "$out"/*.wav | tail -1
