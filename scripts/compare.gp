# One chart of scripts/compare.sh: throughput and p99 latency against the number of
# keep-alive connections, one line per concurrency model. Variables (gnuplot -e):
#   datafile  a data file of compare_report.py: conns, 5 × req/s, 5 × p99 ms
#   output    the SVG to write
#   heading   the chart's title (enhanced text)
#   work_us   the --work-us of the runs; above 0, the ideal lines of one thread and of
#             perfect overlap are drawn, and throughput is on a log scale as well
set terminal svg size 1200,640 enhanced font "Helvetica,14" background rgb "white"
set output output
set encoding utf8

set style line 1 lc rgb "#1b9e77" lw 3 pt 7 ps 1.3
set style line 2 lc rgb "#d95f02" lw 3 pt 5 ps 1.3
set style line 3 lc rgb "#7570b3" lw 3 pt 9 ps 1.5
set style line 4 lc rgb "#e7298a" lw 3 pt 11 ps 1.5 dt (8,3)
set style line 5 lc rgb "#66a61e" lw 3 pt 13 ps 1.5 dt (8,3)
set style line 8 lc rgb "#777777" lw 1.5 dt 2
set style line 9 lc rgb "#777777" lw 1.5 dt 3
set grid lc rgb "#dddddd"
set border lc rgb "#444444"
set logscale x
set xrange [0.75:700]
set xtics ("1" 1, "10" 10, "100" 100, "500" 500)
set xlabel "concurrent keep-alive connections (wrk, log scale)"

ymin = 1e300
ymax = 0
do for [col = 2:6] {
    stats datafile using col nooutput
    ymax = STATS_max > ymax ? STATS_max : ymax
    ymin = STATS_min < ymin ? STATS_min : ymin
}
pmin = 1e300
pmax = 0
do for [col = 7:11] {
    stats datafile using col nooutput
    pmax = STATS_max > pmax ? STATS_max : pmax
    pmin = STATS_min < pmin ? STATS_min : pmin
}
# Whole decades around the p99 values, with room for the reference lines.
pmin = 10 ** floor(log10(work_us > 0 ? (pmin < work_us / 1000.0 ? pmin : work_us / 1000.0) : pmin) - 0.3)
pmax = 10 ** ceil(log10(pmax) + 0.3)

# Both panels share the margins; the legend sits under them, in screen coordinates.
set multiplot layout 1,2 title heading font ",16" margins 0.08,0.98,0.30,0.85 spacing 0.09
set key at screen 0.5,0.11 center center vertical maxrows 4 Left reverse width 4 samplen 2.5 font ",13"

m1 = "counterd: one thread, epoll reactor"
m2 = "threads\\_mutex: thread per connection, Mutex"
m3 = "threads\\_manager: thread per connection, manager thread"
m4 = "go-mutex: goroutine per connection, sync.Mutex"
m5 = "go-channel: goroutine per connection, manager goroutine"

set title "throughput (higher is better)"
set format y "%.0s%c"
if (work_us > 0) {
    set logscale y
    set ylabel "requests per second (log scale)"
    set yrange [ymin / 2 : ymax * 2]
    plot datafile using 1:2 with linespoints ls 1 title m1, \
         "" using 1:3 with linespoints ls 2 title m2, \
         "" using 1:4 with linespoints ls 3 title m3, \
         "" using 1:5 with linespoints ls 4 title m4, \
         "" using 1:6 with linespoints ls 5 title m5, \
         1e6 / work_us with lines ls 8 \
             title sprintf("one thread at a time: 1 s / %g ms", work_us / 1000.0), \
         x * 1e6 / work_us with lines ls 9 title "perfect overlap: connections / work"
} else {
    set ylabel "requests per second"
    set yrange [0 : ymax * 1.15]
    plot datafile using 1:2 with linespoints ls 1 title m1, \
         "" using 1:3 with linespoints ls 2 title m2, \
         "" using 1:4 with linespoints ls 3 title m3, \
         "" using 1:5 with linespoints ls 4 title m4, \
         "" using 1:6 with linespoints ls 5 title m5
}

set title "p99 latency (lower is better)"
set ylabel "p99 latency, ms (log scale)"
set logscale y
set yrange [pmin : pmax]
set format y "%g"
unset key
if (work_us > 0) {
    set key inside bottom right box opaque vertical maxrows 2 Left reverse width 0 samplen 2.5 font ",13"
    plot datafile using 1:7 with linespoints ls 1 notitle, \
         "" using 1:8 with linespoints ls 2 notitle, \
         "" using 1:9 with linespoints ls 3 notitle, \
         "" using 1:10 with linespoints ls 4 notitle, \
         "" using 1:11 with linespoints ls 5 notitle, \
         x * work_us / 1000.0 with lines ls 8 title "one thread at a time: connections × work", \
         work_us / 1000.0 with lines ls 9 title "perfect overlap: work"
} else {
    plot datafile using 1:7 with linespoints ls 1 notitle, \
         "" using 1:8 with linespoints ls 2 notitle, \
         "" using 1:9 with linespoints ls 3 notitle, \
         "" using 1:10 with linespoints ls 4 notitle, \
         "" using 1:11 with linespoints ls 5 notitle
}
unset multiplot
