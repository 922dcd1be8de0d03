"""The SIP call benchmark's parts (load/bench_sip.py is the entry point).

common: machine figures, audio pattern, pcap and sipp scenario files;
bots: the bot agent processes; probe: the RTP probe of the baseline echo;
procs: the hub, media workers and sipp processes.
"""
