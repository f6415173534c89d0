/*
 * Line charts drawn as plain SVG for the HTML report: the memory of a
 * watch file over time, or of a verdict's batches over calls.  Round
 * tick steps (1, 2, 5 x 10^k), a light grid, a legend; every text from
 * the inputs is escaped.
 */
#include "analysis/analysis.h"

#include <math.h>
#include <string.h>
#include <time.h>

static const char *const palette[] = {
	"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
	"#e377c2", "#17becf",
};

/* A round step giving about n ticks over span. */
static double
nice_step(double span, int n)
{
	double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;

	if (f < 1.5)
		return p;
	if (f < 3.5)
		return 2 * p;
	if (f < 7.5)
		return 5 * p;
	return 10 * p;
}

/* Steps for clock times: seconds, minutes, hours. */
static double
time_step(double span, int n)
{
	static const double st[] = { 1, 2, 5, 10, 15, 30, 60, 120, 300, 600,
				     900, 1800, 3600, 7200, 10800, 21600,
				     43200, 86400 };
	double raw = span / n;

	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++)
		if (st[i] >= raw)
			return st[i];
	return nice_step(span, n);
}

static void
tick_label(double v, bool time, double step, char *buf, size_t len)
{
	if (time) {
		time_t t = (time_t)v;
		struct tm tm;

		gmtime_r(&t, &tm);
		if (step >= 60)
			strftime(buf, len, "%H:%M", &tm);
		else
			strftime(buf, len, "%H:%M:%S", &tm);
	} else if (fabs(v) >= 1e6 || (step < 1 && v != 0)) {
		snprintf(buf, len, "%g", v);
	} else {
		snprintf(buf, len, "%.0f", v);
	}
}

/* See analysis.h. */
int
ana_chart_svg(const struct ana_chart *c, FILE *fp)
{
	const int ml = 70, mr = 20, mt = 14, mb = 62;
	int w = c->width > 200 ? c->width : 800;
	int h = c->height > 150 ? c->height : 320;
	double pw = w - ml - mr, ph = h - mt - mb;
	double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
	double xs, ys;
	char lab[64];

	for (size_t i = 0; i < c->nlines; i++)
		for (size_t j = 0; j < c->lines[i].n; j++) {
			double x = c->lines[i].x[j], y = c->lines[i].y[j];

			if (x < x0)
				x0 = x;
			if (x > x1)
				x1 = x;
			if (y < y0)
				y0 = y;
			if (y > y1)
				y1 = y;
		}
	if (!isfinite(x0)) {
		x0 = 0;
		x1 = 1;
	}
	if (x1 <= x0)
		x1 = x0 + 1;
	if (!isfinite(y0)) {
		y0 = 0;
		y1 = 1;
	}
	/* the range of the data, not from 0: growth must be visible */
	if (y1 - y0 < 1e-9 * fabs(y1) || y1 <= y0) {
		y0 -= 0.5;
		y1 += 0.5;
	}
	ys = nice_step(y1 - y0, 5);
	y1 = ceil(y1 / ys) * ys;
	y0 = floor(y0 / ys) * ys;
	if (y1 <= y0)
		y1 = y0 + ys;
	xs = c->x_time ? time_step(x1 - x0, 6) : nice_step(x1 - x0, 6);

	fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" "
		"width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		"font-family=\"sans-serif\" font-size=\"12\">\n", w, h, w, h);
	fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" "
		"fill=\"#fcfcfc\" stroke=\"#bbb\"/>\n", ml, mt, pw, ph);
	/* y grid and ticks */
	for (double v = y0; v <= y1 + ys / 2; v += ys) {
		double y = mt + ph - (v - y0) / (y1 - y0) * ph;

		tick_label(v, false, ys, lab, sizeof(lab));
		fprintf(fp, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.0f\" "
			"y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
			"<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" "
			"fill=\"#444\">%s</text>\n", ml, y, ml + pw, y, ml - 6,
			y + 4, lab);
	}
	/* x grid and ticks */
	for (double v = ceil(x0 / xs) * xs; v <= x1 + 1e-9; v += xs) {
		double x = ml + (v - x0) / (x1 - x0) * pw;

		tick_label(v, c->x_time, xs, lab, sizeof(lab));
		fprintf(fp, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
			"y2=\"%.0f\" stroke=\"#e4e4e4\"/>"
			"<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" "
			"fill=\"#444\">%s</text>\n", x, mt, x, mt + ph, x,
			mt + ph + 16, lab);
	}
	fputs("<text x=\"14\" y=\"", fp);
	fprintf(fp, "%.0f\" transform=\"rotate(-90 14 %.0f)\" "
		"text-anchor=\"middle\" fill=\"#222\">", mt + ph / 2,
		mt + ph / 2);
	ana_html_escape(fp, c->ylabel);
	fprintf(fp, "</text>\n<text x=\"%.0f\" y=\"%.0f\" "
		"text-anchor=\"middle\" fill=\"#222\">", ml + pw / 2,
		mt + ph + 34);
	ana_html_escape(fp, c->xlabel);
	fputs("</text>\n", fp);
	/* lines */
	for (size_t i = 0; i < c->nlines; i++) {
		const struct ana_chart_line *l = &c->lines[i];
		const char *col = palette[i % (sizeof(palette) /
					       sizeof(palette[0]))];

		fprintf(fp, "<polyline fill=\"none\" stroke=\"%s\" "
			"stroke-width=\"2\" points=\"", col);
		for (size_t j = 0; j < l->n; j++)
			fprintf(fp, "%s%.1f,%.1f", j ? " " : "",
				ml + (l->x[j] - x0) / (x1 - x0) * pw,
				mt + ph - (l->y[j] - y0) / (y1 - y0) * ph);
		fputs("\"/>\n", fp);
		if (l->n == 1)
			fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" "
				"fill=\"%s\"/>\n",
				ml + (l->x[0] - x0) / (x1 - x0) * pw,
				mt + ph - (l->y[0] - y0) / (y1 - y0) * ph, col);
	}
	/* legend, below the axis label */
	{
		double lx = ml;

		for (size_t i = 0; i < c->nlines; i++) {
			const char *col = palette[i % (sizeof(palette) /
						       sizeof(palette[0]))];
			size_t len = strlen(c->lines[i].label ?
					    c->lines[i].label : "");

			fprintf(fp, "<rect x=\"%.0f\" y=\"%d\" width=\"14\" "
				"height=\"4\" fill=\"%s\"/><text x=\"%.0f\" "
				"y=\"%d\" fill=\"#222\">", lx, h - 12, col,
				lx + 18, h - 7);
			ana_html_escape(fp, c->lines[i].label);
			fputs("</text>\n", fp);
			lx += 30 + 7.0 * (double)(len > 60 ? 60 : len);
		}
	}
	fputs("</svg>\n", fp);
	return ferror(fp) ? -LP_EIO : 0;
}
