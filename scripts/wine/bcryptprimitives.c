/* Wine 8 lacks ProcessPrng, which Rust's std on Windows asks
 * bcryptprimitives.dll for at start-up. This stand-in forwards it to
 * BCryptGenRandom, which Wine has. Built by scripts/wine-run for the Wine
 * prefix only; real Windows has its own DLL. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
