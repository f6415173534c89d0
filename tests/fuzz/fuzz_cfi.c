/*
 * Call frame information read from a target's memory by the malloc
 * tracer's unwinder: probe__eh_frame_hdr() on the whole input, and
 * probe__cfi_eval() on CIE and FDE instructions cut from it.  The input:
 * CIE length, code alignment, data alignment (signed), pc offset, then
 * the CIE instructions and the FDE instructions.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probes/probes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct probe__cfa_row row;
	uint64_t table, count;
	size_t cie_len;
	uint8_t *cie, *fde;
	int rc;

	if (probe__eh_frame_hdr(data, size, 0x1000, &table, &count) == 0 &&
	    table < 0x1000)
		abort();	/* the table follows the header */
	if (size < 4)
		return 0;
	cie_len = data[0] < size - 4 ? data[0] : size - 4;
	/* copies of exact size: no read may pass their ends */
	cie = malloc(cie_len ? cie_len : 1);
	fde = malloc(size - 4 - cie_len ? size - 4 - cie_len : 1);
	if (!cie || !fde)
		abort();
	memcpy(cie, data + 4, cie_len);
	memcpy(fde, data + 4 + cie_len, size - 4 - cie_len);
	rc = probe__cfi_eval(cie, cie_len, fde, size - 4 - cie_len,
			     data[1], (int8_t)data[2], 16, 0x1000,
			     0x1000 + data[3], &row);
	if (rc == 0 && row.state == PROBE_ROW_OK &&
	    row.cfa_reg != 6 && row.cfa_reg != 7)
		abort();	/* only rsp and rbp based rows are OK */
	free(cie);
	free(fde);
	return 0;
}
