# bash completion for leakprobe: commands, each command's options (read
# from its --help, so they never drift), file names for options that take
# a path, and the PIDs of Ruby processes (by /proc/PID/exe, or by comm
# when exe cannot be read) where a command wants a target.
# Installed as $(PREFIX)/share/bash-completion/completions/leakprobe.

# PIDs of Ruby processes, one per line.
_leakprobe_ruby_pids()
{
	local d comm
	{
		# one fork for every exe link: "... /proc/PID/exe -> /path"
		ls -l /proc/[0-9]*/exe 2>/dev/null | awk '{
			n = split($0, a, " -> "); t = a[n]
			sub(/ \(deleted\)$/, "", t)
			m = split(t, b, "/")
			if (b[m] ~ /^ruby/ && match(a[1], /\/proc\/[0-9]+\//))
				print substr(a[1], RSTART + 6, RLENGTH - 7)
		}'
		for d in /proc/[0-9]*; do
			comm=
			read -r comm 2>/dev/null <"$d/comm" || continue
			[[ $comm == ruby* ]] && echo "${d#/proc/}"
		done
	} | sort -un
}

# Options of a command as "OPTION ARG" lines (ARG "-" when it takes none),
# from `leakprobe CMD --help`.
_leakprobe_opts()
{
	"$1" "$2" --help 2>/dev/null | awk '/^ +-/ {
		sub(/^ +/, ""); sub(/  .*/, "")
		n = split($0, it, /, /); arg = "-"
		for (i = 1; i <= n; i++) {
			k = split(it[i], w, " "); o[i] = w[1]
			if (k > 1) arg = w[2]
		}
		for (i = 1; i <= n; i++) print o[i], arg
	}'
}

_leakprobe()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local lp=${COMP_WORDS[0]} cmd= ci=0 i opts arg w pid_given=0
	COMPREPLY=()
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; ci=$i; break ;;
		esac
	done
	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "-v --verbose -q --quiet -h --help -V --version" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$("$lp" --help 2>/dev/null |
				awk '/^commands:/ { c = 1; next } c && /^  [a-z]/ { print $1 }')" -- "$cur"))
		fi
		return 0
	fi
	if [[ $cmd == help ]]; then
		COMPREPLY=($(compgen -W "$("$lp" --help 2>/dev/null |
			awk '/^commands:/ { c = 1; next } c && /^  [a-z]/ { print $1 }')" -- "$cur"))
		return 0
	fi
	opts=$(_leakprobe_opts "$lp" "$cmd")
	# the word after an option that takes an argument
	if ((COMP_CWORD > ci + 1)); then
		arg=$(awk -v o="$prev" '$1 == o { print $2; exit }' <<<"$opts")
		case $arg in
		'' | -) ;;
		DIR) COMPREPLY=($(compgen -d -- "$cur")); return 0 ;;
		PATH | FILE | P | OUT) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
		*) return 0 ;;
		esac
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(awk '{ print $1 }' <<<"$opts")" -- "$cur"))
		return 0
	fi
	# operands given so far (skipping options and their arguments)
	for ((i = ci + 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ $w == -* ]]; then
			arg=$(awk -v o="$w" '$1 == o { print $2; exit }' <<<"$opts")
			[[ -n $arg && $arg != - ]] && ((i++))
			continue
		fi
		[[ $w =~ ^[0-9]+$ ]] && pid_given=1
	done
	case $cmd in
	attach | eval | ab | bisect | heapdump | malloc)
		((pid_given)) || COMPREPLY=($(compgen -W "$(_leakprobe_ruby_pids)" -- "$cur")) ;;
	watch)
		COMPREPLY=($(compgen -W "$(_leakprobe_ruby_pids)" -- "$cur")) ;;
	plot | heapdiff)
		COMPREPLY=($(compgen -f -- "$cur")) ;;
	esac
	return 0
}
complete -F _leakprobe leakprobe
