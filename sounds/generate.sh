#!/usr/bin/env bash
# generate.sh regenerates every embedded sound of package sounds from text and
# synthesis parameters only, so no file in prompts/ or music/ is of unknown
# origin. Run it from anywhere (make sounds); it needs espeak-ng and sox.
#
# Output format (what sounds.DecodeWAV accepts): RIFF/WAVE, PCM, 16-bit signed,
# 8000 Hz, mono. Dither is off and sox runs in repeatable mode (-R), so two runs
# with the same tool versions give byte-identical files.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prompts="$here/prompts"
music="$here/music"

for tool in espeak-ng sox; do
	command -v "$tool" >/dev/null || { echo "generate.sh: $tool not found (apt-get install -y espeak-ng sox)" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$prompts" "$music"

# sox options shared by every conversion: repeatable, no dither, quiet.
SOX=(sox -R -D -V1)
# Output format: 8 kHz, mono, 16-bit signed PCM.
OUT=(-r 8000 -c 1 -b 16 -e signed-integer)

# speak NAME TEXT: espeak-ng (en-us, 150 words/min) -> 8 kHz mono 16-bit,
# leading and trailing silence trimmed, peak normalised to -3 dBFS.
speak() {
	local name="$1" text="$2"
	espeak-ng -v en-us -s 150 -w "$tmp/$name.raw.wav" "$text"
	"${SOX[@]}" "$tmp/$name.raw.wav" "${OUT[@]}" "$prompts/$name.wav" \
		highpass 100 \
		silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
		rate -v 8000 norm -3
}

speak parked          "Your call is parked. To retrieve it, dial"
digits=(zero one two three four five six seven eight nine)
for i in "${!digits[@]}"; do
	speak "digit-$i" "${digits[$i]}"
done
speak star            "star"
speak pound           "pound"
speak no-held-call    "There is no call on hold to park."
speak number-busy     "That parking number is busy."
speak not-parked      "There is no call parked on that number."
speak not-permitted   "Call parking is not permitted."
speak invalid-number  "That number is not valid."
speak goodbye         "Goodbye."
speak slot-busy       "That parking slot is busy."
speak returned        "This is a returned parked call."
speak unavailable     "The person you are calling is not available."

# Music on hold: a ii-V-I style loop of soft sine-tone chords, each chord
# played as a rolled arpeggio (notes enter 150 ms apart and decay). Notes span
# 130-660 Hz and deliberately avoid A (220/440/880 Hz) and anything near the
# 1000 Hz and 1400 Hz test tones, so the tone detectors that check bridged
# audio never mistake music for a test tone. 4 chords x 2.5 s x 3 = 30 s.
chords=(
	"130.81 329.63 392.00 493.88 587.33" # Cmaj9 (C3 E4 G4 B4 D5)
	"164.81 392.00 493.88 587.33"        # Em7   (E3 G4 B4 D5)
	"146.83 349.23 523.25 659.26"        # Dm9   (D3 F4 C5 E5)
	"196.00 349.23 493.88 659.26"        # G13   (G3 F4 B4 E5)
)
segs=()
n=0
for round in 1 2 3; do
	for chord in "${chords[@]}"; do
		notes=()
		k=0
		for f in $chord; do
			delay=$(awk -v k="$k" 'BEGIN { printf "%.2f", k * 0.15 }')
			note="$tmp/note-$n-$k.wav"
			"${SOX[@]}" -n "${OUT[@]}" "$note" synth 2.5 sine "$f" \
				pad "$delay" 0 trim 0 2.5 fade q 0.01 2.5 2.2
			notes+=("$note")
			k=$((k + 1))
		done
		seg="$tmp/seg-$n.wav"
		"${SOX[@]}" -m "${notes[@]}" "${OUT[@]}" "$seg"
		segs+=("$seg")
		n=$((n + 1))
	done
done
"${SOX[@]}" "${segs[@]}" "${OUT[@]}" "$music/default.wav" norm -3

echo "generate.sh: wrote $(ls "$prompts"/*.wav | wc -l) prompts and $(ls "$music"/*.wav | wc -l) music file(s)"
